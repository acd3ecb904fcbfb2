//! A workload's volumes: bind mounts as `hostPath`, named volumes as claims, each claim written once per export.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Volume, VolumeMount as KubeVolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names;
use super::notes::Notes;
use super::workload::Workload;

/// Manifests carry no size; a claim must ask for one.
pub const CLAIM_SIZE: &str = "1Gi";

/// The claims written so far: claim name → the podman volume it stands for.
#[derive(Debug, Default)]
pub struct Claims {
    by_name: BTreeMap<String, String>,
}

impl Claims {
    /// Bind mounts as `hostPath` volumes, named volumes as claims (new
    /// ones returned), each with its mount.
    pub fn volumes(
        &mut self,
        w: &Workload,
        notes: &mut Notes,
    ) -> (
        Vec<Volume>,
        Vec<KubeVolumeMount>,
        Vec<PersistentVolumeClaim>,
    ) {
        let (mut volumes, mut mounts, mut claims) = (Vec::new(), Vec::new(), Vec::new());
        for (i, v) in w.volumes.iter().enumerate() {
            let field = format!("volume {}:{}", v.source, v.dest);
            let mut read_only = false;
            for o in &v.options {
                match o.as_str() {
                    "ro" => read_only = true,
                    // Kubernetes mounts read-write and recursively by default.
                    "rw" => {}
                    "rbind" if v.is_bind() => {}
                    other => notes.not_exported(
                        &w.subject,
                        format!("{field} option {other}"),
                        "no volumeMount equivalent (only ro and rw map); the volume is exported without it",
                    ),
                }
            }
            let name;
            if v.is_bind() {
                name = format!("host-{i}");
                volumes.push(Volume {
                    name: name.clone(),
                    host_path: Some(HostPathVolumeSource {
                        path: v.source.clone(),
                        type_: None,
                    }),
                    ..Volume::default()
                });
            } else {
                let Some(claim) = names::to_dns1123_subdomain(&v.source) else {
                    notes.not_exported(&w.subject, field, "the volume name has nothing of a Kubernetes claim name (a-z, 0-9, '-', '.')");
                    continue;
                };
                match self.by_name.get(&claim) {
                    Some(source) if *source != v.source => {
                        notes.not_exported(
                            &w.subject,
                            field,
                            format!("its claim name {claim:?} is already volume {source:?}'s"),
                        );
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        if claim != v.source {
                            notes.changed(&w.subject, &field, format!("claim {claim:?}: {:?} is not a Kubernetes name; podman kube play uses a volume {claim:?}, not {:?} (copy the data with podman volume export/import)", v.source, v.source));
                        }
                        notes.note(&w.subject, &field, format!("claim {claim:?} asks for {CLAIM_SIZE} ReadWriteOnce (manifests carry no size; podman ignores it, a cluster does not)"));
                        self.by_name.insert(claim.clone(), v.source.clone());
                        claims.push(persistent_volume_claim(&claim));
                    }
                }
                name = format!("claim-{i}");
                volumes.push(Volume {
                    name: name.clone(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim,
                        read_only: None,
                    }),
                    ..Volume::default()
                });
            }
            mounts.push(KubeVolumeMount {
                name,
                mount_path: v.dest.clone(),
                read_only: read_only.then_some(true),
                ..KubeVolumeMount::default()
            });
        }
        (volumes, mounts, claims)
    }
}

/// A claim podman turns into a named volume of the same name.
fn persistent_volume_claim(name: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(CLAIM_SIZE.into()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}
