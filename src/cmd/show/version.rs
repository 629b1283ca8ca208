//! `show PATH`: one artifact version (or a file inside a directory version), as text or JSON.

use serde::Serialize;

use super::*;
use crate::error::Result;
use crate::report::Role;
use crate::report::{self, ColorChoice, Style, emit, short_hash};
use crate::store::Store;
use crate::store::lineage::{Card, Member, Version};
use crate::store::packages::EnvPackages;

/// One file of a directory version (`show DIR --files`).
#[derive(Serialize)]
pub(super) struct FileRow {
    /// relative to the directory
    path: String,
    hash: String,
    size: u64,
    mode: String,
}

/// The model card's JSON: the card, plus the file a target named inside a directory, plus the
/// directory's files with `--files`.
#[derive(Serialize)]
pub(super) struct CardJson<'a> {
    #[serde(flatten)]
    card: &'a Card,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a Member>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<FileRow>>,
    /// the model versions this version is registered as
    models: Vec<ModelName>,
}

/// A name a version is registered under (`mlrun model register`), in the card.
#[derive(Serialize)]
pub(super) struct ModelName {
    name: String,
    version: String,
    aliases: Vec<String>,
}

/// `mlrun show PATH`: the model card of a version, or of a file inside a directory version.
pub(super) fn show_version(
    store: &Store,
    v: &Version,
    file: Option<Member>,
    note: Option<String>,
    args: &ShowArgs,
    link: Option<String>,
    color: ColorChoice,
) -> Result<i32> {
    if let Some(n) = note {
        Style::stderr(color).note(&n);
    }
    let card = store.card(v.av_id)?;
    let files = match (args.files, v.kind.as_str(), &file) {
        (true, "dir", None) => Some(
            store
                .dir_entry_list(&v.hash)?
                .into_iter()
                .map(|e| FileRow {
                    path: e.relpath,
                    hash: e.hash,
                    size: e.size,
                    mode: format!("{:o}", e.mode),
                })
                .collect::<Vec<_>>(),
        ),
        (true, ..) => {
            let path = file.as_ref().map_or(v.path.as_str(), |m| m.path.as_str());
            Style::stderr(color).note(&format!(
                "`--files` lists the files of a directory version; `{path}` is a file"
            ));
            None
        }
        _ => None,
    };
    let names: Vec<ModelName> = store
        .model_versions_of(v.av_id)?
        .into_iter()
        .map(|m| ModelName {
            name: m.name,
            version: m.version,
            aliases: m.aliases,
        })
        .collect();
    if args.json {
        let out = CardJson {
            card: &card,
            file: file.as_ref(),
            files,
            models: names,
        };
        emit(&format!(
            "{}\n",
            report::json_with_url(&out, link.as_deref())
        ));
        return Ok(0);
    }
    let style = Style::stdout(color);
    let mut o = match &file {
        Some(m) => render_file_card(&card, m, &style),
        None => render_card(&card, &style),
    };
    if !names.is_empty() {
        let line = format!(
            "  model     {}\n",
            names
                .iter()
                .map(|m| {
                    let mut s = format!("{}@{}", m.name, m.version);
                    if !m.aliases.is_empty() {
                        s += &format!(" ({})", m.aliases.join(", "));
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        // under the `content` line of the card's head
        let at = o
            .find("\n  content ")
            .and_then(|i| o[i + 1..].find('\n').map(|j| i + j + 2))
            .unwrap_or(0);
        o.insert_str(at, &line);
    }
    if let Some(files) = &files {
        o += &format!(
            "\n{}\n",
            style.paint(
                Role::Strong,
                &format!("files of {}/ ({})", v.path, files.len())
            )
        );
        let w = files.iter().map(|f| f.path.len()).max().unwrap_or(0);
        for f in files {
            o += &format!(
                "  {:<w$}  {}  {:>10}\n",
                f.path,
                style.paint(Role::Muted, short_hash(&f.hash)),
                report::size(f.size)
            );
        }
    }
    if args.packages
        && let Some(env) = &card.environment
    {
        let envs: Vec<(&String, &EnvPackages)> = env.packages.iter().collect();
        o += &package_lists(&envs, &style);
    }
    if let Some(url) = &link {
        o += &report::ui_link_line(url, &style);
    }
    emit(&o);
    Ok(0)
}
