//! `-p NAME=VALUE`, as `tkt run` and `tkt pipeline|task start` read it.

use std::collections::BTreeMap;

use tektite_api::v1::{ParamType, ParamValue};

/// How a `-p` is written, for messages.
pub const FORM: &str = "NAME=VALUE (arrays as a,b,c; objects as key:value,key2:value2)";

/// `NAME=VALUE` split at its first `=`.
pub fn split(p: &str) -> Result<(String, String), String> {
    match p.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.into(), value.into())),
        _ => Err(format!("-p {p}: expected {FORM}")),
    }
}

/// The value of `-p NAME=TEXT` for a param declared of type `t`.
pub fn value(name: &str, text: &str, t: ParamType) -> Result<ParamValue, String> {
    Ok(match t {
        ParamType::String => ParamValue::String(text.to_owned()),
        ParamType::Array => ParamValue::Array(if text.is_empty() {
            Vec::new()
        } else {
            text.split(',').map(str::to_owned).collect()
        }),
        ParamType::Object => {
            let mut map = BTreeMap::new();
            for pair in text.split(',').filter(|p| !p.is_empty()) {
                let Some((k, v)) = pair.split_once(':') else {
                    return Err(format!(
                        "-p {name}={text}: {name:?} is an object: write key:value,key2:value2"
                    ));
                };
                map.insert(k.to_owned(), v.to_owned());
            }
            ParamValue::Object(map)
        }
    })
}
