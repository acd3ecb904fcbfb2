//! An exported object's metadata: its name, its labels (the identity label always) and annotations, within what a cluster accepts.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names;
use super::notes::Notes;
use super::workload::Workload;

/// The cluster refuses an object whose annotations add up to more.
const ANNOTATIONS_MAX: usize = 256 * 1024;

/// Name, labels (the identity label always), annotations. A label
/// Kubernetes would refuse becomes an annotation; a key that cannot be one
/// either is left out; both are noted.
pub(super) fn metadata(w: &Workload, notes: &mut Notes) -> ObjectMeta {
    let mut labels = BTreeMap::from([w.identity.clone()]);
    let mut annotations = BTreeMap::new();
    for (k, v) in &w.annotations {
        if names::is_label_key(k) {
            annotations.insert(k.clone(), v.clone());
        } else {
            notes.not_exported(
                &w.subject,
                format!("annotation {k}"),
                "the key is not a valid Kubernetes annotation key",
            );
        }
    }
    for (k, v) in &w.labels {
        if *k == w.identity.0 {
            notes.not_exported(
                &w.subject,
                format!("label {k}"),
                format!("the export sets it to {:?}", w.identity.1),
            );
            continue;
        }
        match names::label_problem(k, v) {
            None => {
                labels.insert(k.clone(), v.clone());
            }
            Some(why) if names::is_label_key(k) && !annotations.contains_key(k) => {
                notes.changed(
                    &w.subject,
                    format!("label {k}"),
                    format!("{why}: written as an annotation"),
                );
                annotations.insert(k.clone(), v.clone());
            }
            Some(why) => notes.not_exported(&w.subject, format!("label {k}"), why),
        }
    }
    let size: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > ANNOTATIONS_MAX {
        notes.note(
            &w.subject,
            "annotations",
            format!("{size} bytes in all: a cluster refuses more than {ANNOTATIONS_MAX}"),
        );
    }
    ObjectMeta {
        name: Some(w.name.clone()),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..ObjectMeta::default()
    }
}
