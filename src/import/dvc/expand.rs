//! `foreach` and `matrix`: the items of one stage definition as DVC names them, and the
//! expansion of a definition into one stage per item.

use serde_norway::{Mapping, Value as Y};

use super::*;
use crate::error::Result;
use crate::pipeline::diag::did_you_mean;

/// `foreach` items as DVC names them: a dict by its keys, a list of scalars by the values, a list
/// with any list or dict in it by the index. The flag says whether `${key}` is defined.
pub fn foreach_items(v: &Y) -> Option<(Vec<(String, Y)>, bool)> {
    match v {
        Y::Mapping(m) => Some((
            m.iter().map(|(k, v)| (scalar_text(k), v.clone())).collect(),
            true,
        )),
        Y::Sequence(l) => {
            let composite = l
                .iter()
                .any(|i| matches!(i, Y::Mapping(_) | Y::Sequence(_)));
            Some((
                l.iter()
                    .enumerate()
                    .map(|(n, i)| {
                        let k = if composite {
                            n.to_string()
                        } else {
                            scalar_text(i)
                        };
                        (k, i.clone())
                    })
                    .collect(),
                false,
            ))
        }
        _ => None,
    }
}

/// `matrix` combinations, in DVC's order and with its names (`a-b`, a list or dict value
/// written as `NAMEi`): (name, the `item` mapping).
pub fn matrix_items(axes: &[(String, Vec<Y>)]) -> Vec<(String, Mapping)> {
    let mut out: Vec<(Vec<String>, Mapping)> = vec![(Vec::new(), Mapping::new())];
    for (name, values) in axes {
        let mut next = Vec::new();
        for (frags, item) in &out {
            for (i, v) in values.iter().enumerate() {
                let mut f = frags.clone();
                f.push(if matches!(v, Y::Mapping(_) | Y::Sequence(_)) {
                    format!("{name}{i}")
                } else {
                    scalar_text(v)
                });
                let mut m = item.clone();
                m.insert(Y::String(name.clone()), v.clone());
                next.push((f, m));
            }
        }
        out = next;
    }
    out.into_iter().map(|(f, m)| (f.join("-"), m)).collect()
}

impl Converter<'_> {
    pub(super) fn foreach(
        &mut self,
        name: &str,
        def: &Mapping,
        vars: &Vars,
        steps: &mut Vec<Step>,
    ) -> Result<()> {
        for k in def.keys() {
            let k = scalar_text(k);
            if k != "foreach" && k != "do" {
                return Err(self
                    .src
                    .error(Some(name), &k, None, "is not allowed beside `foreach`")
                    .hint(
                        "a foreach stage has `foreach` and `do`; put the stage's keys under `do`",
                    ));
            }
        }
        let iter = self.expand_value(
            name,
            "foreach",
            &def["foreach"],
            &Mapping::new(),
            vars,
            Mode::Iterable,
        )?;
        let Some((items, has_key)) = foreach_items(&iter) else {
            return Err(self.src.error(
                Some(name),
                "foreach",
                None,
                &format!("must be a list or a mapping, found {}", kind(&iter)),
            ));
        };
        let Some(Y::Mapping(body)) = def.get("do") else {
            return Err(self.src.error(
                Some(name),
                "foreach",
                None,
                "has no `do` mapping (the stage to repeat for each item)",
            ));
        };
        for (key, item) in items {
            let mut local = Mapping::new();
            let shown_item = match &item {
                Y::Mapping(_) | Y::Sequence(_) => format!("#{key}"),
                v => scalar_text(v),
            };
            local.insert("item".into(), item);
            let origin = if has_key {
                local.insert("key".into(), Y::String(key.clone()));
                format!(" (foreach key \"{key}\")")
            } else {
                format!(" (foreach item {shown_item})")
            };
            let s = self.stage(name, &format!("{name}@{key}"), body, &local, vars, origin)?;
            steps.push(s);
        }
        Ok(())
    }

    pub(super) fn matrix(
        &mut self,
        name: &str,
        def: &Mapping,
        vars: &Vars,
        steps: &mut Vec<Step>,
    ) -> Result<()> {
        let m = self.expand_value(
            name,
            "matrix",
            &def["matrix"],
            &Mapping::new(),
            vars,
            Mode::Iterable,
        )?;
        let Y::Mapping(m) = m else {
            return Err(self.src.error(
                Some(name),
                "matrix",
                None,
                &format!("must be a mapping of names to lists, found {}", kind(&m)),
            ));
        };
        let mut axes = Vec::new();
        for (k, v) in &m {
            let k = scalar_text(k);
            let Y::Sequence(values) = v else {
                return Err(self.src.error(
                    Some(name),
                    &format!("matrix.{k}"),
                    None,
                    &format!("must be a list of values, found {}", kind(v)),
                ));
            };
            axes.push((k, values.clone()));
        }
        let mut body = def.clone();
        body.remove("matrix");
        for (key, item) in matrix_items(&axes) {
            let origin = format!(
                " (matrix: {})",
                item.iter()
                    .map(|(k, v)| format!(
                        "{}={}",
                        scalar_text(k),
                        match v {
                            Y::Mapping(_) | Y::Sequence(_) =>
                                serde_json::to_string(v).unwrap_or_default(),
                            v => scalar_text(v),
                        }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut local = Mapping::new();
            local.insert("item".into(), Y::Mapping(item));
            local.insert("key".into(), Y::String(key.clone()));
            let s = self.stage(name, &format!("{name}@{key}"), &body, &local, vars, origin)?;
            steps.push(s);
        }
        Ok(())
    }

    pub(super) fn expand_value(
        &self,
        stage: &str,
        key: &str,
        v: &Y,
        local: &Mapping,
        vars: &Vars,
        mode: Mode<'_>,
    ) -> Result<Y> {
        match v {
            Y::String(s) => expand(s, local, vars, mode).map_err(|e| {
                let needle = match &e {
                    TemplateError::Undefined(x) | TemplateError::NotText(x, _) => {
                        format!("${{{x}")
                    }
                    TemplateError::Malformed(x) => x.clone(),
                };
                let mut err = self.src.error(Some(stage), key, Some(&needle), &e.to_string());
                if let TemplateError::Undefined(x) = &e {
                    let names: Vec<String> = local
                        .keys()
                        .chain(vars.values.keys())
                        .map(scalar_text)
                        .collect();
                    let first = segments(x)[0].clone();
                    err = match did_you_mean(&first, names.iter().map(String::as_str)) {
                        Some(s) if s != first => err.hint(format!("did you mean `{s}`?")),
                        _ => err.hint(
                            "define it in params.yaml, in a file listed under `vars`, or inline under `vars`",
                        ),
                    };
                }
                err
            }),
            Y::Sequence(l) => Ok(Y::Sequence(
                l.iter()
                    .map(|i| self.expand_value(stage, key, i, local, vars, mode))
                    .collect::<Result<_>>()?,
            )),
            Y::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, val) in m {
                    // keys are templated too (`- out/${item}.csv: {cache: false}`)
                    let k = match k {
                        Y::String(_) => self.expand_value(stage, key, k, local, vars, Mode::Text)?,
                        other => other.clone(),
                    };
                    out.insert(k, self.expand_value(stage, key, val, local, vars, mode)?);
                }
                Ok(Y::Mapping(out))
            }
            other => Ok(other.clone()),
        }
    }
}
