//! `deploy/` stays installable: `kubectl apply -k deploy/` names only files that exist,
//! every manifest is YAML with a kind, and the controller's Deployment matches the
//! contract the agent DaemonSet relies on.

use std::path::Path;

use serde_json::Value;

fn deploy() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy().join(file)).unwrap();
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_kustomization_names_files_that_exist_and_parse() {
    let k = &documents("kustomization.yaml")[0];
    let resources = k["resources"].as_array().unwrap();
    assert!(resources.len() >= 6);
    for r in resources {
        let file = r.as_str().unwrap();
        for doc in documents(file) {
            assert!(
                doc["kind"].is_string() && doc["apiVersion"].is_string(),
                "{file}: {doc}"
            );
        }
    }
}

#[test]
fn the_controller_serves_what_the_agents_dial() {
    let docs = documents("controller.yaml");
    let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(service["metadata"]["name"], "tektite-controller");
    assert_eq!(service["metadata"]["namespace"], "tektite-system");
    assert_eq!(service["spec"]["ports"][0]["port"], 9443);
    let agent = documents("daemonset.yaml");
    let ds = agent.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let args = ds["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("https://tektite-controller.tektite-system.svc:9443"),
        "{args}"
    );
    let sa = ds["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap();
    // The controller accepts exactly this account by default (--agent-service-account).
    assert_eq!(sa, "tektite-node-agent");

    // The controller mints its certificate (no Secret to make first, no TLS flags) into
    // the default --tls-secret and --ca-secret, and the agents mount that CA Secret.
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let controller = deployment["spec"]["template"]["spec"].to_string();
    assert!(!controller.contains("--tls-cert-file"), "{controller}");
    assert!(
        !controller.contains("tektite-controller-tls"),
        "{controller}"
    );
    let volumes = ds["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(
        volumes.contains("\"secretName\":\"tektite-controller-ca\""),
        "{volumes}"
    );
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role")
        .expect("a Role in the controller's namespace");
    assert_eq!(role["metadata"]["namespace"], "tektite-system");
    let creates_secrets = role["rules"].as_array().unwrap().iter().any(|r| {
        r["resources"] == serde_json::json!(["secrets"])
            && r["verbs"] == serde_json::json!(["create"])
    });
    assert!(creates_secrets, "{role}");
}

#[test]
fn the_controller_may_do_what_it_does_and_no_more() {
    let docs = documents("controller.yaml");
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let rules = role["rules"].as_array().unwrap();
    let verbs = |resource: &str| -> Vec<String> {
        rules
            .iter()
            .filter(|r| {
                r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
            })
            .flat_map(|r| {
                r["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
            })
            .collect()
    };
    assert_eq!(
        verbs("pods"),
        ["get", "list", "watch", "create", "patch", "delete"]
    );
    assert_eq!(verbs("tokenreviews"), ["create"]);
    assert_eq!(verbs("persistentvolumeclaims"), ["list", "watch", "create"]);
    assert_eq!(verbs("tasks"), ["get"]);
    assert_eq!(verbs("customruns"), ["list", "watch", "create", "patch"]);
    assert!(
        !rules
            .iter()
            .any(|r| r["verbs"].as_array().unwrap().iter().any(|v| v == "*"))
    );
    // Credentials are read by name only: Secrets cannot be listed or watched.
    assert_eq!(verbs("secrets"), ["get"]);
    assert_eq!(verbs("serviceaccounts"), ["get"]);
}

#[test]
fn the_scheduler_calls_the_extender_the_controller_serves_for_the_pods_it_creates() {
    let docs = documents("scheduler.yaml");
    let config_map = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let config: Value =
        serde_saphyr::from_str(config_map["data"]["config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(config["kind"], "KubeSchedulerConfiguration");
    let profile = config["profiles"][0]["schedulerName"].as_str().unwrap();
    let extender = &config["extenders"][0];
    assert_eq!(
        extender["urlPrefix"],
        format!(
            "http://tektite-controller.tektite-system.svc:9444{}",
            tektite_controller::extender::PREFIX
        )
    );
    assert_eq!(extender["filterVerb"], "filter");
    assert_eq!(extender["prioritizeVerb"], "prioritize");
    assert_eq!(extender["nodeCacheCapable"], true);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        volumes[0]["configMap"]["name"],
        config_map["metadata"]["name"]
    );

    let controller = documents("controller.yaml");
    let service = controller.iter().find(|d| d["kind"] == "Service").unwrap();
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "extender" && p["port"] == 9444),
        "{service}"
    );
    let deployment = controller
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"].to_string();
    assert!(
        args.contains(&format!("--scheduler-name={profile}")),
        "{args}"
    );
    assert!(
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "extender" && p["containerPort"] == 9444)
    );
}

/// The webhook configuration calls what the controller serves: its Service's webhook
/// port, which reaches the container port of the default `--webhook-addr`, at the path
/// the admission handler answers; and the leader may write that configuration's
/// caBundle (the default `--webhook-config`), and only that one.
#[test]
fn the_webhook_configuration_calls_what_the_controller_serves() {
    let hooks = documents("webhooks.yaml");
    let config = hooks
        .iter()
        .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
        .unwrap();
    let help = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help.txt"),
    )
    .unwrap();
    let name = config["metadata"]["name"].as_str().unwrap();
    assert!(help.contains(&format!("[default: {name}]")), "{help}");
    let hook = &config["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["admissionReviewVersions"], serde_json::json!(["v1"]));
    let client = &hook["clientConfig"]["service"];
    assert_eq!(client["path"], tektite_controller::admission::PATH);

    let docs = documents("controller.yaml");
    let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(client["name"], service["metadata"]["name"]);
    assert_eq!(client["namespace"], service["metadata"]["namespace"]);
    let port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == client["port"])
        .expect("the Service has the webhook's port");
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let target = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port["targetPort"])
        .expect("the Service's target port is the container's");
    let listen = format!("[default: 0.0.0.0:{}]", target["containerPort"]);
    assert!(
        help.contains(&listen),
        "--webhook-addr defaults to {listen}"
    );

    let role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap()
        .to_string();
    assert!(role.contains(r#""resourceNames":["tektite"]"#), "{role}");
    // The defaulting hook calls the same Service, at its own path.
    let mutating = hooks
        .iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .unwrap();
    assert_eq!(mutating["metadata"]["name"], name);
    let defaults = &mutating["webhooks"][0]["clientConfig"]["service"];
    assert_eq!(
        defaults["path"],
        tektite_controller::admission::DEFAULTS_PATH
    );
    assert_eq!(
        (&defaults["name"], &defaults["port"]),
        (&client["name"], &client["port"])
    );
    // Every kind the validator reads is sent to it.
    let resources = hook["rules"].to_string();
    for plural in [
        "tasks",
        "pipelines",
        "taskruns",
        "pipelineruns",
        "stepactions",
    ] {
        assert!(resources.contains(&format!("\"{plural}\"")), "{resources}");
    }
}

/// The CRDs the controller converts are served at v1 (stored) and v1beta1, and their
/// conversion webhook calls the Service the admission webhooks call, at the path the
/// controller answers ConversionReviews on; the leader may write those CRDs' caBundle,
/// and only theirs. Matching Equivalent, a v1beta1 document is validated and defaulted too.
#[test]
fn the_crds_conversion_webhook_calls_what_the_controller_serves() {
    let hooks = documents("webhooks.yaml");
    let admission = &hooks[0]["webhooks"][0]["clientConfig"]["service"];
    for hook in hooks.iter().flat_map(|h| h["webhooks"].as_array().unwrap()) {
        assert_eq!(hook["matchPolicy"], "Equivalent", "{hook}");
    }
    let role = documents("controller.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap();
    let crd_rule = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resources"] == serde_json::json!(["customresourcedefinitions"]))
        .expect("a rule for the CRDs' caBundle");
    assert_eq!(crd_rule["verbs"], serde_json::json!(["get", "update"]));
    let names: Vec<&str> = crd_rule["resourceNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(names, tektite_controller::conversion::CRDS);
    for name in tektite_controller::conversion::CRDS {
        let crd = &documents(&format!("crds/{name}.yaml"))[0];
        let versions: Vec<(&str, bool, bool)> = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap(),
                    v["served"].as_bool().unwrap(),
                    v["storage"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            versions,
            [("v1", true, true), ("v1beta1", true, false)],
            "{name}"
        );
        let conversion = &crd["spec"]["conversion"];
        assert_eq!(conversion["strategy"], "Webhook", "{name}");
        assert_eq!(
            conversion["webhook"]["conversionReviewVersions"],
            serde_json::json!(["v1"])
        );
        let service = &conversion["webhook"]["clientConfig"]["service"];
        assert_eq!(service["path"], tektite_controller::conversion::PATH);
        for field in ["name", "namespace", "port"] {
            assert_eq!(service[field], admission[field], "{name}: {field}");
        }
    }
}

/// The optional monitoring component names files that exist, its monitors select the
/// controller's Service and the agents' Pods by the labels they carry, on their metrics
/// ports, and the dashboard is JSON with panels.
#[test]
fn the_monitoring_component_scrapes_what_the_manifests_label_and_serve() {
    let k = &documents("monitoring/kustomization.yaml")[0];
    assert_eq!(k["kind"], "Component");
    for r in k["resources"].as_array().unwrap() {
        assert!(!documents(&format!("monitoring/{}", r.as_str().unwrap())).is_empty());
    }
    let dashboard =
        std::fs::read_to_string(deploy().join("monitoring/grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 10);

    let service_monitor = &documents("monitoring/servicemonitor.yaml")[0];
    let controller = documents("controller.yaml");
    let service = controller.iter().find(|d| d["kind"] == "Service").unwrap();
    for (k, v) in service_monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][k], v, "{k}");
    }
    let port = &service_monitor["spec"]["endpoints"][0]["port"];
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| &p["name"] == port)
    );

    let pod_monitor = &documents("monitoring/podmonitor.yaml")[0];
    let agent = documents("daemonset.yaml");
    let ds = agent.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let template = &ds["spec"]["template"];
    for (k, v) in pod_monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&template["metadata"]["labels"][k], v, "{k}");
    }
    let port = &pod_monitor["spec"]["podMetricsEndpoints"][0]["port"];
    let ports = template["spec"]["containers"][0]["ports"].to_string();
    assert!(ports.contains(&format!("\"name\":{port}")), "{ports}");
}
