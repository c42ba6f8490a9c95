//! Carries wasm-opt's shortened import, export and module names over to
//! wasm-bindgen's JS glue, and checks the result against the module.
//!
//! The glue names the wasm's exports only as `wasm.NAME` and its imports only
//! as the keys `NAME: function` of one object, passed as the module
//! `"./sdk_bg.js"` (wasm-bindgen is pinned, so this shape holds). Anything
//! that does not fit is an error rather than a broken SDK.

use super::Result;
use std::collections::{BTreeSet, HashMap};

/// The glue with every wasm name replaced by its short form.
///
/// `renames` is what `wasm-opt --minify-imports-and-exports-and-modules`
/// printed (`old => new` lines); `wasm` is the module it wrote.
pub fn apply(glue: &str, renames: &str, wasm: &[u8]) -> Result<String> {
    let renames = parse_renames(renames)?;
    let module = Module::read(wasm).ok_or("could not read the optimized wasm")?;
    let import_module = match module.import_modules.iter().collect::<Vec<_>>()[..] {
        [one] => one.clone(),
        _ => return Err("expected the wasm's imports to come from one module".into()),
    };

    let mut out = String::with_capacity(glue.len());
    let mut imports_given = BTreeSet::new();
    let mut rest = glue;
    while let Some(start) = rest.find(is_ident) {
        let (before, from_ident) = rest.split_at(start);
        let end = from_ident
            .find(|c| !is_ident(c))
            .unwrap_or(from_ident.len());
        let (ident, after) = from_ident.split_at(end);
        out.push_str(before);
        let export_use = out.ends_with("wasm.") && !out[..out.len() - 5].ends_with(is_ident);
        let import_key = ident.starts_with("__wb") && after.starts_with(": function");
        if export_use || import_key {
            let short = renames.get(ident).ok_or_else(|| {
                format!("the glue names `{ident}`, which wasm-opt did not rename")
            })?;
            if export_use && !module.exports.contains(short) {
                return Err(format!(
                    "the glue uses export `{ident}`, which the wasm lacks"
                ));
            }
            if import_key {
                imports_given.insert(short.clone());
            }
            out.push_str(short);
        } else {
            out.push_str(ident);
        }
        rest = after;
    }
    out.push_str(rest);

    if let Some(missing) = module.imports.difference(&imports_given).next() {
        return Err(format!(
            "the glue does not provide the wasm's import `{missing}`"
        ));
    }
    const MODULE_KEY: &str = "\"./sdk_bg.js\": import0";
    if out.matches(MODULE_KEY).count() != 1 {
        return Err(format!("expected `{MODULE_KEY}` once in the glue"));
    }
    Ok(out.replace(MODULE_KEY, &format!("\"{import_module}\": import0")))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

fn parse_renames(text: &str) -> Result<HashMap<String, String>> {
    let mut renames = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (old, new) = line
            .split_once(" => ")
            .ok_or_else(|| format!("unexpected line from wasm-opt: {line}"))?;
        if let Some(earlier) = renames.insert(old.to_owned(), new.to_owned()) {
            if earlier != new {
                return Err(format!("wasm-opt renamed `{old}` twice"));
            }
        }
    }
    Ok(renames)
}

/// The names a wasm module imports and exports.
#[derive(Default)]
struct Module {
    import_modules: BTreeSet<String>,
    imports: BTreeSet<String>,
    exports: BTreeSet<String>,
}

impl Module {
    fn read(wasm: &[u8]) -> Option<Module> {
        let mut r = Reader(wasm.get(8..)?);
        let mut module = Module::default();
        while !r.0.is_empty() {
            let id = r.byte()?;
            let len = r.leb()? as usize;
            let mut section = Reader(r.take(len)?);
            match id {
                2 => {
                    for _ in 0..section.leb()? {
                        module.import_modules.insert(section.name()?);
                        module.imports.insert(section.name()?);
                        match section.byte()? {
                            0 => drop(section.leb()?),
                            1 => {
                                section.byte()?;
                                section.limits()?;
                            }
                            2 => section.limits()?,
                            3 => drop(section.take(2)?),
                            4 => {
                                section.byte()?;
                                section.leb()?;
                            }
                            _ => return None,
                        }
                    }
                }
                7 => {
                    for _ in 0..section.leb()? {
                        module.exports.insert(section.name()?);
                        section.byte()?;
                        section.leb()?;
                    }
                }
                _ => {}
            }
        }
        Some(module)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn leb(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn name(&mut self) -> Option<String> {
        let len = self.leb()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn limits(&mut self) -> Option<()> {
        let flags = self.byte()?;
        self.leb()?;
        if flags & 1 != 0 {
            self.leb()?;
        }
        Some(())
    }
}

/// The glue without what the script tag never uses: `initSync` (the loader
/// instantiates asynchronously) and the warning about the deprecated way of
/// calling the init function (the loader calls it the current way). Errs
/// when the glue no longer has the expected shape.
pub fn trim(glue: &str) -> Result<String> {
    const INIT_SYNC: &str = "function initSync(module) {";
    const EXPORTED: &str = "Object.assign(__wbg_init, { initSync }, exports)";
    const DEPRECATED: &str = "console.warn('using deprecated parameters for the initialization function; pass a single object instead')";
    let start = match glue.matches(INIT_SYNC).count() {
        1 => glue.find(INIT_SYNC).unwrap_or_default(),
        _ => return Err(format!("expected `{INIT_SYNC}` once in the glue")),
    };
    // Its body's braces balance (no braces in its strings).
    let mut depth = 0usize;
    let mut end = None;
    for (i, c) in glue[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => {
                end = Some(start + i + 1);
                break;
            }
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let end = end.ok_or("the glue's initSync does not end")?;
    let out = [&glue[..start], &glue[end..]].concat();
    for expected in [EXPORTED, DEPRECATED] {
        if out.matches(expected).count() != 1 {
            return Err(format!("expected `{expected}` once in the glue"));
        }
    }
    Ok(out
        .replace(EXPORTED, "Object.assign(__wbg_init, exports)")
        .replace(DEPRECATED, ""))
}
