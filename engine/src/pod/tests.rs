//! The pod builder, case by case: a TaskRun as a user writes it (inline YAML) in, the
//! whole Pod out, compared with a Pod written out by hand (never built with the builder's
//! own helpers), as YAML so a difference reads as a diff.

use pretty_assertions::assert_eq;
use tektite_api::step::EntrypointArgs;
use tektite_api::step::creds::Credential;
use tektite_api::v1::{TaskRun, TaskSpec};

use super::*;

fn task_run(yaml: &str) -> TaskRun {
    serde_saphyr::from_str(yaml).expect("the test's TaskRun is valid YAML")
}

pub(super) fn yaml_of(value: &impl serde::Serialize) -> String {
    // Through JSON, so map keys come out sorted and absent fields absent.
    let json = serde_json::to_value(value).unwrap();
    serde_saphyr::to_string(&json).unwrap()
}

fn build_pod(tr: &TaskRun, settings: &PodSettings) -> Result<Built, BuildError> {
    let spec: TaskSpec = tr.spec.task_spec.clone().unwrap_or_default();
    build(&PodRequest {
        task_run: tr,
        spec: &spec,
        task_name: None,
        retry: 0,
        settings,
        credentials: &[],
        step_actions: &BTreeMap::new(),
        step_actions_from: "",
        images: &Default::default(),
    })
}

fn assert_pod(tr: &str, expected: &str) {
    let built = build_pod(&task_run(tr), &PodSettings::default()).unwrap();
    let expected: serde_json::Value = serde_saphyr::from_str(expected).unwrap();
    assert_eq!(yaml_of(&built.pod), yaml_of(&expected));
}

#[test]
fn a_one_step_task_run_gets_one_init_container_and_no_ready_wait() {
    assert_pod(
        r#"
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: hello
  namespace: ci
  uid: tr-uid
  # Tekton's defaulting labels its runs so; on a Pod the key would hand it to Tekton's
  # controller too.
  labels: {team: a, app.kubernetes.io/managed-by: tekton-pipelines}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    note: kept
spec:
  params:
    - name: who
      value: tektite
  taskSpec:
    params:
      - name: who
    results:
      - name: greeting
    steps:
      - name: say
        image: alpine
        script: |
          echo "hello $(params.who)" > $(results.greeting.path)
"#,
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: hello-pod
  namespace: ci
  labels:
    team: a
    tektite.dev/managed-by: tektite
    tekton.dev/taskRun: hello
    tekton.dev/taskRunUID: tr-uid
  annotations:
    note: kept
    tekton.dev/ready: READY
  ownerReferences:
    - apiVersion: tekton.dev/v1
      kind: TaskRun
      name: hello
      uid: tr-uid
      controller: true
      blockOwnerDeletion: true
spec:
  restartPolicy: Never
  serviceAccountName: default
  initContainers:
    - name: prepare
      image: ghcr.io/tektite-dev/tektite-entrypoint:0.1.0
      command: [/tektite/entrypoint]
      args:
        - init
        - --copy-self-to=/tekton/bin/entrypoint
        - --scripts-dir=/tekton/scripts
        - "--script=script-0=echo \"hello tektite\" > /tekton/results/greeting\n"
        - --steps-dir=/tekton/steps
        - --step=say
        - --run-dir=/tekton/run/0
      terminationMessagePolicy: FallbackToLogsOnError
      volumeMounts:
        - {name: tekton-internal-bin, mountPath: /tekton/bin}
        - {name: tekton-internal-scripts, mountPath: /tekton/scripts}
        - {name: tekton-internal-steps, mountPath: /tekton/steps}
        - {name: tekton-internal-run-0, mountPath: /tekton/run/0}
        - {name: tekton-internal-workspace, mountPath: /workspace}
  containers:
    - name: step-say
      image: alpine
      command: [/tekton/bin/entrypoint]
      args:
        - --post-file=/tekton/run/0/out
        - --step-metadata-dir=/tekton/steps/step-say
        - --results-dir=/tekton/results
        - --result=greeting
        - --termination-path=/tekton/termination
        - --cancel-file=/tekton/downward/cancel
        - --
        - /tekton/scripts/script-0
      workingDir: /workspace
      terminationMessagePath: /tekton/termination
      terminationMessagePolicy: File
      volumeMounts:
        - {name: tekton-internal-bin, mountPath: /tekton/bin, readOnly: true}
        - {name: tekton-internal-run-0, mountPath: /tekton/run/0}
        - {name: tekton-internal-steps, mountPath: /tekton/steps, readOnly: true}
        - {name: tekton-internal-steps, mountPath: /tekton/steps/step-say, subPath: step-say}
        - {name: tekton-internal-results, mountPath: /tekton/results}
        - {name: tekton-internal-scripts, mountPath: /tekton/scripts, readOnly: true}
        - {name: tekton-internal-home, mountPath: /tekton/home}
        - {name: tekton-internal-downward, mountPath: /tekton/downward, readOnly: true}
        - {name: tekton-internal-workspace, mountPath: /workspace}
  volumes:
    - {name: tekton-internal-bin, emptyDir: {}}
    - {name: tekton-internal-run-0, emptyDir: {}}
    - {name: tekton-internal-steps, emptyDir: {}}
    - {name: tekton-internal-results, emptyDir: {}}
    - {name: tekton-internal-scripts, emptyDir: {}}
    - {name: tekton-internal-home, emptyDir: {}}
    - {name: tekton-internal-workspace, emptyDir: {}}
    - name: tekton-internal-downward
      downwardAPI:
        items:
          - path: ready
            fieldRef: {fieldPath: "metadata.annotations['tekton.dev/ready']"}
          - path: cancel
            fieldRef: {fieldPath: "metadata.annotations['tekton.dev/cancel']"}
"#,
    );
}

#[test]
fn sidecars_workspaces_templates_and_resources_all_land_in_the_pod() {
    assert_pod(
        r#"
metadata: {name: build, namespace: ci, uid: u2}
spec:
  serviceAccountName: builder
  workspaces:
    - name: source
      volumeClaimTemplate:
        spec:
          accessModes: [ReadWriteOnce]
          resources: {requests: {storage: 1Gi}}
    - name: settings
      configMap: {name: maven-settings}
      subPath: conf
  computeResources:
    requests: {cpu: "1", memory: 1Gi}
    limits: {memory: 2Gi}
  stepSpecs:
    - name: test
      computeResources: {requests: {cpu: 100m}}
  podTemplate:
    nodeSelector: {disk: ssd}
    env:
      - {name: CI, value: "true"}
  taskSpec:
    workspaces:
      - name: source
      - name: settings
        mountPath: /etc/maven
    sidecars:
      - name: docker
        image: docker:dind
        readinessProbe:
          tcpSocket: {port: 2375}
    steps:
      - name: compile
        image: maven
        workingDir: src
        onError: continue
        timeout: 5m
        command: [mvn, compile]
      - name: test
        image: maven
        env:
          - {name: CI, value: "yes"}
        command: [mvn, test]
"#,
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: build-pod
  namespace: ci
  labels:
    tekton.dev/taskRun: build
    tektite.dev/managed-by: tektite
    tekton.dev/taskRunUID: u2
  ownerReferences:
    - {apiVersion: tekton.dev/v1, kind: TaskRun, name: build, uid: u2, controller: true, blockOwnerDeletion: true}
spec:
  restartPolicy: Never
  serviceAccountName: builder
  nodeSelector: {disk: ssd}
  initContainers:
    - name: prepare
      image: ghcr.io/tektite-dev/tektite-entrypoint:0.1.0
      command: [/tektite/entrypoint]
      args: [init, --copy-self-to=/tekton/bin/entrypoint, --steps-dir=/tekton/steps,
             --step=compile, --step=test, --run-dir=/tekton/run/0, --run-dir=/tekton/run/1,
             --dir=/workspace/src]
      env:
        - {name: CI, value: "true"}
      terminationMessagePolicy: FallbackToLogsOnError
      volumeMounts:
        - {name: tekton-internal-bin, mountPath: /tekton/bin}
        - {name: tekton-internal-scripts, mountPath: /tekton/scripts}
        - {name: tekton-internal-steps, mountPath: /tekton/steps}
        - {name: tekton-internal-run-0, mountPath: /tekton/run/0}
        - {name: tekton-internal-run-1, mountPath: /tekton/run/1}
        - {name: tekton-internal-workspace, mountPath: /workspace}
    - name: sidecar-docker
      image: docker:dind
      restartPolicy: Always
      readinessProbe:
        tcpSocket: {port: 2375}
      env:
        - {name: CI, value: "true"}
      volumeMounts:
        - {name: ws-settings, mountPath: /etc/maven, subPath: conf, readOnly: true}
        - {name: ws-source, mountPath: /workspace/source}
  containers:
    - name: step-compile
      image: maven
      command: [/tekton/bin/entrypoint]
      args: [--wait-file=/tekton/downward/ready, --wait-file-content,
             --post-file=/tekton/run/0/out, --step-metadata-dir=/tekton/steps/step-compile,
             --results-dir=/tekton/results, --termination-path=/tekton/termination,
             --on-error=continue, --timeout=5m0s, --cancel-file=/tekton/downward/cancel,
             --, mvn, compile]
      workingDir: /workspace/src
      env:
        - {name: CI, value: "true"}
      resources:
        requests: {cpu: 500m, memory: "536870912"}
        limits: {memory: 2Gi}
      terminationMessagePath: /tekton/termination
      terminationMessagePolicy: File
      volumeMounts:
        - {name: tekton-internal-bin, mountPath: /tekton/bin, readOnly: true}
        - {name: tekton-internal-run-0, mountPath: /tekton/run/0}
        - {name: tekton-internal-run-1, mountPath: /tekton/run/1, readOnly: true}
        - {name: tekton-internal-steps, mountPath: /tekton/steps, readOnly: true}
        - {name: tekton-internal-steps, mountPath: /tekton/steps/step-compile, subPath: step-compile}
        - {name: tekton-internal-results, mountPath: /tekton/results}
        - {name: tekton-internal-scripts, mountPath: /tekton/scripts, readOnly: true}
        - {name: tekton-internal-home, mountPath: /tekton/home}
        - {name: tekton-internal-downward, mountPath: /tekton/downward, readOnly: true}
        - {name: tekton-internal-workspace, mountPath: /workspace}
        - {name: ws-settings, mountPath: /etc/maven, subPath: conf, readOnly: true}
        - {name: ws-source, mountPath: /workspace/source}
    - name: step-test
      image: maven
      command: [/tekton/bin/entrypoint]
      args: [--wait-file=/tekton/run/0/out,
             --post-file=/tekton/run/1/out, --step-metadata-dir=/tekton/steps/step-test,
             --results-dir=/tekton/results, --termination-path=/tekton/termination,
             --cancel-file=/tekton/downward/cancel,
             --, mvn, test]
      workingDir: /workspace
      env:
        - {name: CI, value: "yes"}
      resources:
        requests: {cpu: 500m, memory: "536870912"}
        limits: {memory: 2Gi}
      terminationMessagePath: /tekton/termination
      terminationMessagePolicy: File
      volumeMounts:
        - {name: tekton-internal-bin, mountPath: /tekton/bin, readOnly: true}
        - {name: tekton-internal-run-0, mountPath: /tekton/run/0, readOnly: true}
        - {name: tekton-internal-run-1, mountPath: /tekton/run/1}
        - {name: tekton-internal-steps, mountPath: /tekton/steps, readOnly: true}
        - {name: tekton-internal-steps, mountPath: /tekton/steps/step-test, subPath: step-test}
        - {name: tekton-internal-results, mountPath: /tekton/results}
        - {name: tekton-internal-scripts, mountPath: /tekton/scripts, readOnly: true}
        - {name: tekton-internal-home, mountPath: /tekton/home}
        - {name: tekton-internal-downward, mountPath: /tekton/downward, readOnly: true}
        - {name: tekton-internal-workspace, mountPath: /workspace}
        - {name: ws-settings, mountPath: /etc/maven, subPath: conf, readOnly: true}
        - {name: ws-source, mountPath: /workspace/source}
  volumes:
    - {name: tekton-internal-bin, emptyDir: {}}
    - {name: tekton-internal-run-0, emptyDir: {}}
    - {name: tekton-internal-run-1, emptyDir: {}}
    - {name: tekton-internal-steps, emptyDir: {}}
    - {name: tekton-internal-results, emptyDir: {}}
    - {name: tekton-internal-scripts, emptyDir: {}}
    - {name: tekton-internal-home, emptyDir: {}}
    - {name: tekton-internal-workspace, emptyDir: {}}
    - name: tekton-internal-downward
      downwardAPI:
        items:
          - path: ready
            fieldRef: {fieldPath: "metadata.annotations['tekton.dev/ready']"}
          - path: cancel
            fieldRef: {fieldPath: "metadata.annotations['tekton.dev/cancel']"}
    - name: ws-source
      persistentVolumeClaim: {claimName: pvc-ed6771a085}
    - name: ws-settings
      configMap: {name: maven-settings}
"#,
    );
}

#[test]
fn without_native_sidecars_a_sidecar_is_a_container_beside_the_steps() {
    let tr = task_run(
        r#"
metadata: {name: db, namespace: ci, uid: u3}
spec:
  taskSpec:
    sidecars:
      - {name: postgres, image: postgres, script: "exec postgres"}
    steps:
      - {name: query, image: postgres, command: [psql]}
"#,
    );
    let settings = PodSettings {
        native_sidecars: false,
        ..PodSettings::default()
    };
    let pod = build_pod(&tr, &settings).unwrap().pod.spec.unwrap();
    let names = |cs: &[core::Container]| -> Vec<(String, Option<String>)> {
        cs.iter()
            .map(|c| (c.name.clone(), c.restart_policy.clone()))
            .collect()
    };
    assert_eq!(
        names(&pod.containers),
        [
            ("step-query".into(), None),
            ("sidecar-postgres".into(), None)
        ]
    );
    assert_eq!(
        names(pod.init_containers.as_deref().unwrap()),
        [("prepare".into(), None)]
    );
    let native = build_pod(&tr, &PodSettings::default())
        .unwrap()
        .pod
        .spec
        .unwrap();
    assert_eq!(names(&native.containers), [("step-query".into(), None)]);
    assert_eq!(
        names(native.init_containers.as_deref().unwrap()),
        [
            ("prepare".into(), None),
            ("sidecar-postgres".into(), Some("Always".into()))
        ]
    );
}

#[test]
fn native_sidecars_are_used_from_kubernetes_1_29() {
    let version = |major: &str, minor: &str| k8s_openapi::apimachinery::pkg::version::Info {
        major: major.into(),
        minor: minor.into(),
        ..Default::default()
    };
    assert!(has_native_sidecars(&version("1", "36")));
    assert!(has_native_sidecars(&version("1", "29+")));
    assert!(!has_native_sidecars(&version("1", "28")));
    assert!(!has_native_sidecars(&version("", "")));
    assert!(has_native_sidecars(&version("2", "0")));
}

#[test]
fn a_step_with_neither_command_nor_script_runs_its_images_entrypoint_once_looked_up() {
    let tr = task_run(
        r#"
metadata: {name: t, uid: u}
spec:
  taskSpec:
    steps:
      - {name: ok, image: alpine, command: ["true"]}
      - {name: bare, image: golang}
      - {name: given, image: golang, args: ["env"]}
      - {name: cmd-only, image: busybox}
"#,
    );
    // First the shell is told which images it must look up.
    let err = build_pod(&tr, &PodSettings::default()).unwrap_err();
    assert_eq!(err.reason(), "PodCreationFailed");
    let BuildError::NeedImages(needed) = &err else {
        panic!("{err}")
    };
    let wanted: Vec<(usize, &str)> = needed.iter().map(|n| (n.index, n.image.as_str())).collect();
    assert_eq!(wanted, [(1, "golang"), (2, "golang"), (3, "busybox")]);
    assert!(err.to_string().contains("spec.steps[1].command"), "{err}");
    // Then it builds with their configs: ENTRYPOINT + (the step's args, or CMD).
    let images = BTreeMap::from([
        (
            "golang".to_owned(),
            ImageConfig {
                entrypoint: vec!["/usr/local/bin/go".into()],
                cmd: vec!["version".into()],
                node_selector: BTreeMap::from([("kubernetes.io/arch".into(), "amd64".into())]),
            },
        ),
        (
            "busybox".to_owned(),
            ImageConfig {
                entrypoint: Vec::new(),
                cmd: vec!["sh".into(), "-c".into(), "true".into()],
                node_selector: BTreeMap::new(),
            },
        ),
    ]);
    let spec: TaskSpec = tr.spec.task_spec.clone().unwrap_or_default();
    let built = build(&PodRequest {
        task_run: &tr,
        spec: &spec,
        task_name: None,
        retry: 0,
        settings: &PodSettings::default(),
        credentials: &[],
        step_actions: &BTreeMap::new(),
        step_actions_from: "",
        images: &images,
    })
    .unwrap();
    let ran: Vec<(Vec<String>, Vec<String>)> = built.spec.steps[1..]
        .iter()
        .map(|s| (s.command.clone(), s.args.clone()))
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ran,
        [
            (strings(&["/usr/local/bin/go"]), strings(&["version"])),
            (strings(&["/usr/local/bin/go"]), strings(&["env"])),
            (strings(&["sh"]), strings(&["-c", "true"])),
        ]
    );
    let pod = built.pod.spec.unwrap();
    let args = pod.containers[1].args.clone().unwrap();
    assert!(
        args.windows(2).any(|w| w == ["--", "/usr/local/bin/go"])
            || args.contains(&"/usr/local/bin/go".to_string()),
        "{args:?}"
    );
    assert_eq!(
        pod.node_selector,
        Some(BTreeMap::from([(
            "kubernetes.io/arch".into(),
            "amd64".into()
        )]))
    );
}

#[test]
fn a_workspace_bound_to_nothing_and_a_missing_param_are_refused() {
    let no_volume = task_run(
        r#"
metadata: {name: t, uid: u}
spec:
  workspaces: [{name: src}]
  taskSpec:
    workspaces: [{name: src}]
    steps: [{name: s, image: alpine, command: ["true"]}]
"#,
    );
    let err = build_pod(&no_volume, &PodSettings::default()).unwrap_err();
    assert!(
        matches!(err, BuildError::NoVolume(ref w) if w == "src"),
        "{err}"
    );

    let missing = task_run(
        r#"
metadata: {name: t, uid: u}
spec:
  taskSpec:
    params: [{name: version}]
    steps: [{name: s, image: alpine, command: [echo, "$(params.version)"]}]
"#,
    );
    let err = build_pod(&missing, &PodSettings::default()).unwrap_err();
    assert_eq!(err.reason(), "InvalidParamValue");
    assert!(err.to_string().contains("version"), "{err}");
}

#[test]
fn retries_get_their_own_pod_and_the_scheduler_settings_apply() {
    let tr = task_run(
        r#"
metadata: {name: flaky, uid: u}
spec:
  taskSpec:
    steps: [{name: s, image: alpine, command: ["true"]}]
"#,
    );
    let settings = PodSettings {
        scheduler_name: Some("tektite-scheduler".into()),
        extender_resource: Some("tektite.dev/step-pod".into()),
        results_limit: 4096,
        ..PodSettings::default()
    };
    let spec = tr.spec.task_spec.clone().unwrap();
    let built = build(&PodRequest {
        task_run: &tr,
        spec: &spec,
        task_name: Some("flaky-task"),
        retry: 2,
        settings: &settings,
        credentials: &[],
        step_actions: &BTreeMap::new(),
        step_actions_from: "",
        images: &Default::default(),
    })
    .unwrap();
    let pod = built.pod;
    assert_eq!(pod.metadata.name.as_deref(), Some("flaky-pod-retry2"));
    assert_eq!(
        pod.metadata.labels.unwrap()["tekton.dev/task"],
        "flaky-task"
    );
    let spec = pod.spec.unwrap();
    assert_eq!(spec.scheduler_name.as_deref(), Some("tektite-scheduler"));
    // The init container asks for the resource the default scheduler's extender manages.
    let prepare = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        serde_json::to_value(&prepare.resources).unwrap(),
        serde_json::json!({
            "requests": {"tektite.dev/step-pod": "1"},
            "limits": {"tektite.dev/step-pod": "1"},
        })
    );
    let args = spec.containers[0].args.clone().unwrap();
    assert!(
        args.contains(&"--results-limit=4096".to_owned()),
        "{args:?}"
    );
}

#[test]
fn the_service_accounts_credentials_are_mounted_in_every_step_and_named_to_its_entrypoint() {
    // The seed's setup: an ssh-auth Secret for github.com and a docker-registry Secret.
    let tr = task_run(
        r#"
metadata: {name: build, namespace: default, uid: u}
spec:
  serviceAccountName: gitsa
  taskSpec:
    steps:
      - {name: clone, image: alpine/git, command: [git, clone, "git@github.com:org/app"]}
      - {name: push, image: kaniko, command: [/kaniko/executor]}
"#,
    );
    let credentials = [
        Credential::SshGit {
            secret: "github-auth".into(),
            url: "github.com".into(),
        },
        Credential::DockerConfig {
            secret: "aliyun-registry".into(),
        },
    ];
    let spec = tr.spec.task_spec.clone().unwrap();
    let pod = build(&PodRequest {
        task_run: &tr,
        spec: &spec,
        task_name: None,
        retry: 0,
        settings: &PodSettings::default(),
        credentials: &credentials,
        step_actions: &BTreeMap::new(),
        step_actions_from: "",
        images: &Default::default(),
    })
    .unwrap()
    .pod;
    let spec = pod.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("gitsa"));
    let creds_volumes: Vec<_> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.name.starts_with("tekton-creds"))
        .collect();
    let expected: serde_json::Value = serde_saphyr::from_str(
        r#"
- {name: tekton-creds-0, secret: {secretName: github-auth}}
- {name: tekton-creds-1, secret: {secretName: aliyun-registry}}
- {name: tekton-creds-init-home-0, emptyDir: {medium: Memory}}
- {name: tekton-creds-init-home-1, emptyDir: {medium: Memory}}
"#,
    )
    .unwrap();
    assert_eq!(yaml_of(&creds_volumes), yaml_of(&expected));
    for (i, c) in spec.containers.iter().enumerate() {
        let mounts: Vec<_> = c
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| m.name.starts_with("tekton-creds"))
            .collect();
        let expected: serde_json::Value = serde_saphyr::from_str(&format!(
            r#"
- {{name: tekton-creds-0, mountPath: /tekton/creds-secrets/github-auth, readOnly: true}}
- {{name: tekton-creds-1, mountPath: /tekton/creds-secrets/aliyun-registry, readOnly: true}}
- {{name: tekton-creds-init-home-{i}, mountPath: /tekton/creds}}
"#
        ))
        .unwrap();
        assert_eq!(yaml_of(&mounts), yaml_of(&expected), "{}", c.name);
        let args = c.args.clone().unwrap();
        let flags: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .filter(|a| a.starts_with("--ssh-git") || a.starts_with("--docker-config"))
            .collect();
        assert_eq!(
            flags,
            [
                "--ssh-git=github-auth=github.com",
                "--docker-config=aliyun-registry"
            ]
        );
    }
    // The init container neither needs nor gets them.
    let prepare = &spec.init_containers.unwrap()[0];
    assert!(
        prepare
            .volume_mounts
            .iter()
            .flatten()
            .all(|m| !m.name.starts_with("tekton-creds"))
    );
}

#[test]
fn an_isolated_workspace_is_mounted_only_in_the_steps_and_sidecars_that_list_it() {
    let tr = task_run(
        r#"
metadata: {name: iso, namespace: ci, uid: u4}
spec:
  workspaces:
    - {name: signals, emptyDir: {}}
    - {name: shared, emptyDir: {}}
  taskSpec:
    workspaces:
      - {name: signals}
      - {name: shared}
    steps:
      - {name: writer, image: alpine, command: ["true"], workspaces: [{name: signals}]}
      - {name: other, image: alpine, command: ["true"]}
      - {name: elsewhere, image: alpine, command: ["true"], workspaces: [{name: signals, mountPath: /signals}]}
    sidecars:
      - {name: helper, image: alpine, command: ["true"], workspaces: [{name: signals}]}
"#,
    );
    let pod = build_pod(&tr, &PodSettings::default())
        .unwrap()
        .pod
        .spec
        .unwrap();
    let mounts = |c: &core::Container| -> Vec<(String, String)> {
        c.volume_mounts
            .iter()
            .flatten()
            .filter(|m| m.name.starts_with("ws-"))
            .map(|m| (m.name.clone(), m.mount_path.clone()))
            .collect()
    };
    let by_name = |name: &str| {
        pod.containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .unwrap()
    };
    let pair = |v: &str, p: &str| (v.to_string(), p.to_string());
    assert_eq!(
        mounts(by_name("step-writer")),
        [
            pair("ws-shared", "/workspace/shared"),
            pair("ws-signals", "/workspace/signals")
        ]
    );
    assert_eq!(
        mounts(by_name("step-other")),
        [pair("ws-shared", "/workspace/shared")]
    );
    assert_eq!(
        mounts(by_name("step-elsewhere")),
        [
            pair("ws-shared", "/workspace/shared"),
            pair("ws-signals", "/signals")
        ]
    );
    assert_eq!(
        mounts(by_name("sidecar-helper")),
        [
            pair("ws-shared", "/workspace/shared"),
            pair("ws-signals", "/workspace/signals")
        ]
    );
}

#[test]
fn a_workspace_the_task_run_binds_reaches_the_spec_it_embeds_undeclared() {
    let tr = task_run(
        r#"
metadata: {name: prop, namespace: ci, uid: u5}
spec:
  workspaces:
    - {name: tr-workspace, emptyDir: {}}
  taskSpec:
    steps:
      - {name: simple-step, image: ubuntu, command: [echo], args: ["$(workspaces.tr-workspace.path)"]}
"#,
    );
    let built = build_pod(&tr, &PodSettings::default()).unwrap();
    let step = &built.pod.spec.as_ref().unwrap().containers[0];
    assert!(
        step.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "ws-tr-workspace" && m.mount_path == "/workspace/tr-workspace"),
        "{:?}",
        step.volume_mounts
    );
    assert!(
        step.args
            .as_ref()
            .unwrap()
            .iter()
            .any(|a| a == "/workspace/tr-workspace"),
        "{:?}",
        step.args
    );
}

#[test]
fn a_steps_on_error_may_be_a_param_and_an_unknown_value_fails_the_build() {
    let tr = task_run(
        r#"
metadata: {name: oe, namespace: ci, uid: u6}
spec:
  params: [{name: on-error, value: continue}]
  taskSpec:
    params: [{name: on-error}]
    steps:
      - {name: s, image: alpine, script: exit 1, onError: $(params.on-error)}
"#,
    );
    let built = build_pod(&tr, &PodSettings::default()).unwrap();
    let args = built.pod.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(args.iter().any(|a| a == "--on-error=continue"), "{args:?}");

    let tr = task_run(
        r#"
metadata: {name: oe, namespace: ci, uid: u6}
spec:
  params: [{name: on-error, value: sometimes}]
  taskSpec:
    params: [{name: on-error}]
    steps:
      - {name: s, image: alpine, script: exit 1, onError: $(params.on-error)}
"#,
    );
    let err = build_pod(&tr, &PodSettings::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "step \"s\" has onError \"sometimes\": it must be continue or stopAndFail (spec.steps[0].onError)"
    );
}

/// Alpha artifacts: a step that names an artifacts path gets it substituted, every step
/// mounts `/tekton/artifacts` and is told to collect; a Task that names none has neither.
#[test]
fn a_task_that_names_artifacts_gets_their_volume_and_every_step_collects_them() {
    let tr = task_run(
        r#"
metadata: {name: art, namespace: ci, uid: u}
spec:
  taskSpec:
    steps:
      - name: make
        image: alpine
        script: cat > $(step.artifacts.path) < x; cp x $(artifacts.path)
      - name: use
        image: alpine
        command: [echo, $(steps.make.outputs.image)]
"#,
    );
    let built = build_pod(&tr, &PodSettings::default()).unwrap();
    let pod = built.pod.spec.unwrap();
    assert!(
        pod.volumes
            .iter()
            .flatten()
            .any(|v| v.name == "tekton-internal-artifacts" && v.empty_dir.is_some())
    );
    for c in &pod.containers {
        let args = EntrypointArgs::parse(c.args.clone().unwrap()).unwrap();
        assert_eq!(
            args.artifacts_dir.as_deref(),
            Some(std::path::Path::new("/tekton/artifacts"))
        );
        assert!(
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/tekton/artifacts")
        );
    }
    let use_args = EntrypointArgs::parse(pod.containers[1].args.clone().unwrap()).unwrap();
    assert_eq!(use_args.command, ["echo", "$(steps.make.outputs.image)"]);
    assert_eq!(
        built.spec.steps[0].script.as_deref().unwrap_or_default(),
        "cat > /tekton/steps/step-make/artifacts/provenance.json < x; cp x /tekton/artifacts/provenance.json"
    );

    let plain = build_pod(
        &task_run(
            r#"
metadata: {name: plain, namespace: ci, uid: u}
spec:
  taskSpec:
    steps: [{name: s, image: alpine, script: "echo $(context.taskRun.name)"}]
"#,
        ),
        &PodSettings::default(),
    )
    .unwrap();
    let pod = plain.pod.spec.unwrap();
    assert!(
        !pod.volumes
            .iter()
            .flatten()
            .any(|v| v.name == "tekton-internal-artifacts")
    );
    let args = EntrypointArgs::parse(pod.containers[0].args.clone().unwrap()).unwrap();
    assert_eq!(args.artifacts_dir, None);
}
