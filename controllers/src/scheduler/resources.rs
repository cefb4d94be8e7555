//! Resource arithmetic: what a pod requests and what a node can hold.
//!
//! A pod's effective request follows Kubernetes: the sum over its regular
//! containers, raised to the largest single init container (init containers
//! run one at a time before the others start), plus the pod overhead. Sidecar
//! init containers (`restartPolicy: Always`) keep running, so they add to
//! both the regular sum and every later init container. A container that
//! sets a limit but no request for a resource requests its limit, as API
//! defaulting does in Kubernetes.
//!
//! Quantities are parsed once into integers: CPU in millicores, everything
//! else in whole units (bytes for memory).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rk_api::quantity::{parse_milli, parse_value};

use crate::Error;

/// CPU assumed for a container without a CPU request when scoring, so that
/// request-less pods still spread (Kubernetes' value).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in thousandths of a core.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Local ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Every other resource (extended resources, hugepages), in whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Parse a `resources.requests`-style map. Unknown resource names are
    /// kept as scalar resources; `pods` is ignored (it is a node capacity,
    /// never a request).
    pub fn from_quantities(map: &BTreeMap<String, Quantity>) -> Result<Resources, Error> {
        let mut r = Resources::default();
        for (name, q) in map {
            r.set(name, parse_quantity(name, q)?);
        }
        Ok(r)
    }

    /// The amount of one resource by its Kubernetes name.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }

    fn set(&mut self, name: &str, value: i64) {
        match name {
            "cpu" => self.milli_cpu = value,
            "memory" => self.memory = value,
            "ephemeral-storage" => self.ephemeral_storage = value,
            "pods" => {}
            other => {
                self.scalar.insert(other.to_string(), value);
            }
        }
    }

    /// Whether every amount is zero.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }

    /// Add `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Subtract `other` from `self`, never going below zero (a pod removed
    /// twice must not make a node look bigger than it is).
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu).max(0);
        self.memory = self.memory.saturating_sub(other.memory).max(0);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage)
            .max(0);
        for (k, v) in &other.scalar {
            if let Some(e) = self.scalar.get_mut(k) {
                *e = e.saturating_sub(*v).max(0);
            }
        }
    }

    /// Raise each amount of `self` to at least the one in `other`.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }
}

/// Parse one quantity: CPU in millicores, anything else in whole units.
/// Values beyond `i64` saturate; negative values count as zero.
pub fn parse_quantity(resource: &str, q: &Quantity) -> Result<i64, Error> {
    let parsed = if resource == "cpu" {
        parse_milli(&q.0)
    } else {
        parse_value(&q.0)
    };
    let v = parsed.map_err(|source| Error::InvalidQuantity {
        resource: resource.to_string(),
        value: q.0.clone(),
        source,
    })?;
    Ok(i64::try_from(v.max(0)).unwrap_or(i64::MAX))
}

/// A container's effective requests: its requests, with limits standing in
/// for resources that have a limit but no request.
fn container_requests(req: Option<&ResourceRequirements>) -> Result<Resources, Error> {
    let mut r = Resources::default();
    let Some(req) = req else {
        return Ok(r);
    };
    if let Some(limits) = &req.limits {
        for (name, q) in limits {
            r.set(name, parse_quantity(name, q)?);
        }
    }
    if let Some(requests) = &req.requests {
        for (name, q) in requests {
            r.set(name, parse_quantity(name, q)?);
        }
    }
    Ok(r)
}

/// Like [`container_requests`], with the scoring defaults filled in for CPU
/// and memory when they are not requested.
fn container_non_zero(c: &Container) -> Result<(i64, i64), Error> {
    let r = container_requests(c.resources.as_ref())?;
    let has = |name: &str| {
        let req = c.resources.as_ref();
        req.and_then(|r| r.requests.as_ref())
            .is_some_and(|m| m.contains_key(name))
            || req
                .and_then(|r| r.limits.as_ref())
                .is_some_and(|m| m.contains_key(name))
    };
    let cpu = if has("cpu") {
        r.milli_cpu
    } else {
        DEFAULT_MILLI_CPU_REQUEST
    };
    let mem = if has("memory") {
        r.memory
    } else {
        DEFAULT_MEMORY_REQUEST
    };
    Ok((cpu, mem))
}

/// Whether an init container is a sidecar: it keeps running next to the
/// regular containers.
pub(crate) fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The resources a pod requests, as the scheduler accounts them.
pub fn pod_requests(pod: &Pod) -> Result<Resources, Error> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Resources::default());
    };
    let mut containers = Resources::default();
    for c in &spec.containers {
        containers.add(&container_requests(c.resources.as_ref())?);
    }
    // Init containers run one after another; sidecars among them stay up,
    // so each later init container runs next to all earlier sidecars.
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c.resources.as_ref())?;
        if is_sidecar(c) {
            sidecars.add(&r);
            init_peak.max_with(&sidecars);
        } else {
            let mut running = r;
            running.add(&sidecars);
            init_peak.max_with(&running);
        }
    }
    containers.add(&sidecars);
    containers.max_with(&init_peak);
    // Pod-level resources, when given, replace the container sum for CPU and
    // memory (the only resources they may set).
    if let Some(pod_level) = spec.resources.as_ref() {
        let r = container_requests(Some(pod_level))?;
        let sets = |name: &str| {
            pod_level.requests.as_ref().is_some_and(|m| m.contains_key(name))
                || pod_level.limits.as_ref().is_some_and(|m| m.contains_key(name))
        };
        if sets("cpu") {
            containers.milli_cpu = r.milli_cpu;
        }
        if sets("memory") {
            containers.memory = r.memory;
        }
    }
    if let Some(overhead) = &spec.overhead {
        containers.add(&Resources::from_quantities(overhead)?);
    }
    Ok(containers)
}

/// CPU (millicores) and memory (bytes) of the pod for scoring: like
/// [`pod_requests`] but with defaults for containers that request nothing,
/// so that a node full of request-less pods does not look empty.
pub fn pod_non_zero_requests(pod: &Pod) -> Result<(i64, i64), Error> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok((0, 0));
    };
    let (mut cpu, mut mem) = (0i64, 0i64);
    for c in &spec.containers {
        let (c_cpu, c_mem) = container_non_zero(c)?;
        cpu = cpu.saturating_add(c_cpu);
        mem = mem.saturating_add(c_mem);
    }
    for c in spec.init_containers.iter().flatten() {
        let (c_cpu, c_mem) = container_non_zero(c)?;
        if is_sidecar(c) {
            cpu = cpu.saturating_add(c_cpu);
            mem = mem.saturating_add(c_mem);
        } else {
            cpu = cpu.max(c_cpu);
            mem = mem.max(c_mem);
        }
    }
    let exact = pod_requests(pod)?;
    // Pod-level requests and overhead are exact; let them raise the total.
    Ok((cpu.max(exact.milli_cpu), mem.max(exact.memory)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::testutil::from_json;
    use serde_json::json;

    #[test]
    fn pod_request_rules() {
        let cases = [
            (
                "sum of containers",
                json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "200m", "example.com/gpu": "1"}}}
                ]}),
                (300, 1 << 20, 1),
            ),
            (
                "limits stand in for missing requests",
                json!({"containers": [
                    {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "2Mi"}, "requests": {"memory": "1Mi"}}}
                ]}),
                (1000, 1 << 20, 0),
            ),
            (
                "largest init container wins",
                json!({"initContainers": [
                    {"name": "i", "resources": {"requests": {"cpu": "2"}}}
                ], "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Mi"}}}
                ]}),
                (2000, 1 << 20, 0),
            ),
            (
                "sidecars add to the regular containers and later init containers",
                json!({"initContainers": [
                    {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
                    {"name": "i", "resources": {"requests": {"cpu": "2"}}}
                ], "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "500m"}}}
                ]}),
                (3000, 0, 0),
            ),
            (
                "overhead is added",
                json!({"overhead": {"cpu": "50m"}, "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m"}}}
                ]}),
                (150, 0, 0),
            ),
        ];
        for (name, spec, (cpu, mem, gpu)) in cases {
            let pod: Pod = from_json(json!({"metadata": {"name": "p"}, "spec": spec}));
            let r = pod_requests(&pod).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (r.milli_cpu, r.memory, r.get("example.com/gpu")),
                (cpu, mem, gpu),
                "{name}"
            );
        }
    }

    #[test]
    fn non_zero_defaults_and_errors() {
        let pod: Pod = from_json(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "1"}}}
        ]}}));
        assert_eq!(
            pod_non_zero_requests(&pod),
            Ok((1100, 2 * DEFAULT_MEMORY_REQUEST))
        );
        let bad: Pod = from_json(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "lots"}}}
        ]}}));
        assert!(matches!(pod_requests(&bad), Err(Error::InvalidQuantity { .. })));
    }
}
