//! The commit message: the setters' result and the policies, as the data
//! Flux's templates read.

use tagwarden_api::ImageUpdateAutomation;
use tagwarden_setters::{PolicyImage, UpdateResult};
use tagwarden_template::{FileChange, NamespacedName, ObjectId, TemplateData, UpdatedImage};

/// `template` (Flux's default commit message when `None`) over `data`,
/// with control characters and Unicode line breaks escaped.
pub(crate) fn render_with(template: Option<&str>, data: &TemplateData) -> Result<String, String> {
    // Values come from files and registries: no control character or Unicode
    // line break reaches the commit, where it could forge a trailer line.
    tagwarden_template::render(template, data)
        .map(|m| tagwarden_api::text::escape(&m, true).into_owned())
        .map_err(|e| e.to_string())
}

/// What templates see: the changes, the images and the automation.
pub(crate) fn data(
    auto: &ImageUpdateAutomation,
    result: &UpdateResult,
    policies: &[PolicyImage],
) -> TemplateData {
    let mut changes = Vec::new();
    for f in &result.files {
        let file = tagwarden_setters::slash_path(&f.path);
        for o in &f.objects {
            for c in &o.changes {
                changes.push(FileChange {
                    file: file.clone(),
                    object: ObjectId {
                        api_version: o.id.api_version.clone(),
                        kind: o.id.kind.clone(),
                        namespace: o.id.namespace.clone(),
                        name: o.id.name.clone(),
                    },
                    old_value: c.old_value.clone(),
                    new_value: c.new_value.clone(),
                    setter: c.setter.clone(),
                });
            }
        }
    }
    // `.Updated.Images`: the images of the policies some change came from.
    let used = result.policies();
    let images = policies
        .iter()
        .filter(|p| used.contains(&(p.namespace.clone(), p.name.clone())))
        .map(|p| UpdatedImage {
            image: p.latest.name.clone(),
            tag: p.latest.tag.clone(),
            digest: p.latest.digest.clone(),
            policy: NamespacedName::new(&p.namespace, &p.name),
        })
        .collect();
    TemplateData {
        automation: NamespacedName::new(&auto.meta.namespace, &auto.meta.name),
        changes,
        values: auto.message_template_values.clone(),
        images,
    }
}
