//! A TaskRun's `podTemplate`: scheduling, security and DNS settings of the Pod, its extra
//! volumes, and environment variables for every container that does not set them itself.

use k8s_openapi::api::core::v1 as core;
use tektite_api::v1::PodTemplate;

fn list<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

pub fn apply(pod: &mut core::PodSpec, t: &PodTemplate) {
    let map = |m: &std::collections::BTreeMap<String, String>| (!m.is_empty()).then(|| m.clone());
    if let Some(m) = map(&t.node_selector) {
        pod.node_selector = Some(m);
    }
    if let Some(v) = list(&t.tolerations) {
        pod.tolerations = Some(v);
    }
    if let Some(v) = list(&t.image_pull_secrets) {
        pod.image_pull_secrets = Some(v);
    }
    if let Some(v) = list(&t.host_aliases) {
        pod.host_aliases = Some(v);
    }
    if let Some(v) = list(&t.topology_spread_constraints) {
        pod.topology_spread_constraints = Some(v);
    }
    macro_rules! copy {
        ($($field:ident),*) => {$(
            if t.$field.is_some() {
                pod.$field = t.$field.clone();
            }
        )*};
    }
    copy!(
        affinity,
        security_context,
        runtime_class_name,
        automount_service_account_token,
        dns_policy,
        dns_config,
        enable_service_links,
        priority_class_name,
        scheduler_name,
        host_network,
        host_users
    );
    if !t.volumes.is_empty() {
        let volumes = pod.volumes.get_or_insert_with(Vec::new);
        for v in &t.volumes {
            if !volumes.iter().any(|have| have.name == v.name) {
                volumes.push(v.clone());
            }
        }
    }
    if !t.env.is_empty() {
        let containers = pod.containers.iter_mut();
        let inits = pod.init_containers.iter_mut().flatten();
        for c in containers.chain(inits) {
            let env = c.env.get_or_insert_with(Vec::new);
            for e in &t.env {
                if !env.iter().any(|have| have.name == e.name) {
                    env.push(e.clone());
                }
            }
        }
    }
}
