//! What a click records: pure rules over what the shell read off the DOM.
//!
//! The shell finds the clicked element's nearest interactive ancestor and
//! describes it; these rules decide what of it may leave the page. Input
//! values are never read by the shell, and no text at all is kept for
//! password, e-mail and telephone fields.

use crate::prelude::*;

use crate::text;
use crate::value::Value;
use waymark_wire::redact_url;

/// What counts as clicked: the nearest element matching this selector at or
/// above the event's target (a CSS selector for `Element.closest`).
pub const CLICKABLE: &str =
    "a,button,input[type=submit],input[type=button],[role=button],[data-waymark-event]";
/// Clicks inside an element matching this selector are not recorded.
pub const IGNORE_CLICKS: &str = "[data-waymark-ignore]";
/// The prefix of the attributes a click carries as its `data`.
pub const DATA_PREFIX: &str = "data-waymark-";

/// Longest text kept from a clicked element.
pub const MAX_CLICK_TEXT: usize = 100;
/// Ancestors named in the selector path, at most.
pub const MAX_SELECTOR_DEPTH: usize = 4;

/// One element as the shell saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// Lowercase tag name.
    pub tag: String,
    pub id: Option<String>,
    pub classes: Vec<String>,
}

/// The clicked (interactive) element and its context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClickTarget {
    pub node: Node,
    /// Ancestors from the parent upwards (the shell stops at `body`).
    pub ancestors: Vec<Node>,
    /// The element's visible text (`innerText`), untrimmed. Empty for inputs.
    pub text: String,
    /// Absolute URL of a link.
    pub href: Option<String>,
    /// `type` of an `input` or `button`.
    pub input_type: Option<String>,
    /// `data-waymark-*` attributes, without the prefix (`data-waymark-plan` → `plan`).
    pub data: Vec<(String, String)>,
}

impl Node {
    /// An element read off the DOM: its lowercase tag, its id (none when
    /// empty) and its `class` attribute split on whitespace.
    pub fn new(tag: String, id: String, classes: &str) -> Node {
        Node {
            tag,
            id: (!id.is_empty()).then_some(id),
            classes: classes
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
        }
    }
}

impl ClickTarget {
    /// Notes one attribute of the clicked element: the `data-waymark-*`
    /// ones become its `data` (without the prefix); the others are ignored.
    pub fn attribute(&mut self, name: &str, value: String) {
        if let Some(key) = name.strip_prefix(DATA_PREFIX) {
            self.data.push((key.to_owned(), value));
        }
    }
}

/// The device class from what the browser tells: `mobile` when the browser
/// says so (User-Agent Client Hints) or for a touch screen under 600 px on
/// its short side, `tablet` for a touch screen under 1100 px, else `desktop`.
pub fn device_type(
    mobile_hint: bool,
    touch: bool,
    screen_width: f64,
    screen_height: f64,
) -> &'static str {
    // As JavaScript's `Math.min(w, h) || 0`: an unknown side makes it 0.
    let shortest = if screen_width.is_nan() || screen_height.is_nan() {
        0.0
    } else {
        screen_width.min(screen_height)
    };
    if mobile_hint || (touch && shortest < 600.0) {
        "mobile"
    } else if touch && shortest < 1100.0 {
        "tablet"
    } else {
        "desktop"
    }
}

/// Input types whose text is personal data: nothing of them is recorded.
const PRIVATE_INPUT_TYPES: [&str; 3] = ["password", "email", "tel"];

impl ClickTarget {
    /// The custom name given with `data-waymark-event`, if any.
    pub fn event_name(&self) -> Option<&str> {
        self.data
            .iter()
            .find(|(k, _)| k == "event")
            .map(|(_, v)| v.as_str())
    }

    /// The click's props. `page_host` decides the `outbound` flag.
    pub fn props(&self, page_host: &str, sensitive: &[String]) -> Value {
        let mut props = vec![("tag".to_owned(), Value::String(self.node.tag.clone()))];
        if let Some(id) = &self.node.id {
            props.push(("id".into(), Value::String(id.clone())));
        }
        if !self.node.classes.is_empty() {
            let classes = text::join(self.node.classes.iter().map(String::as_str), " ");
            props.push(("classes".into(), Value::String(classes)));
        }
        props.push(("selector".into(), Value::String(self.selector())));
        let private = self.input_type.as_deref().is_some_and(|t| {
            PRIVATE_INPUT_TYPES
                .iter()
                .any(|p| t.eq_ignore_ascii_case(p))
        });
        let text = trimmed_text(&self.text);
        if !private && self.node.tag != "input" && !text.is_empty() {
            props.push(("text".into(), Value::String(text)));
        }
        if let Some(href) = &self.href {
            let href = redact_url(href, sensitive);
            let outbound = host_of(&href).is_some_and(|h| !h.eq_ignore_ascii_case(page_host));
            props.push(("href".into(), Value::String(href)));
            props.push(("outbound".into(), Value::Bool(outbound)));
        }
        for (key, value) in &self.data {
            if key != "event" && key != "ignore" {
                props.push((key.clone(), Value::String(value.clone())));
            }
        }
        Value::Object(props)
    }

    /// A short CSS path: up to [`MAX_SELECTOR_DEPTH`] levels, stopping at the
    /// first element with an id (`div#nav > ul.menu > a.item`).
    pub fn selector(&self) -> String {
        let mut parts = vec![simple_selector(&self.node)];
        if self.node.id.is_none() {
            for node in self.ancestors.iter().take(MAX_SELECTOR_DEPTH - 1) {
                if node.tag == "body" || node.tag == "html" {
                    break;
                }
                parts.push(simple_selector(node));
                if node.id.is_some() {
                    break;
                }
            }
        }
        text::join(parts.iter().rev().map(String::as_str), " > ")
    }
}

fn simple_selector(node: &Node) -> String {
    let mut s = node.tag.clone();
    if let Some(id) = &node.id {
        s.push('#');
        s.push_str(id);
    } else {
        for class in node.classes.iter().take(2) {
            s.push('.');
            s.push_str(class);
        }
    }
    s
}

/// Whitespace collapsed, at most [`MAX_CLICK_TEXT`] characters.
fn trimmed_text(raw: &str) -> String {
    let collapsed = text::join(raw.split_whitespace(), " ");
    collapsed.chars().take(MAX_CLICK_TEXT).collect()
}

/// The host of an absolute `http(s)` URL; `None` for others (`mailto:`, `#top`).
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    // Byte scans for ASCII delimiters: leaner in the wasm than string patterns.
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    match authority.bytes().rposition(|b| b == b'@') {
        Some(at) => authority.get(at + 1..),
        None => Some(authority),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shells_readings_become_nodes_and_data() {
        let node = Node::new("a".into(), String::new(), "  nav  primary\tcta ");
        assert_eq!(node.id, None);
        assert_eq!(node.classes, ["nav", "primary", "cta"]);
        let mut target = ClickTarget {
            node,
            ..ClickTarget::default()
        };
        target.attribute("data-waymark-event", "signup".into());
        target.attribute("data-waymark-plan", "pro".into());
        target.attribute("data-other", "x".into());
        target.attribute("href", "/x".into());
        assert_eq!(target.event_name(), Some("signup"));
        assert_eq!(
            target.data,
            [
                ("event".into(), "signup".into()),
                ("plan".into(), "pro".into())
            ]
        );
    }

    #[test]
    fn device_types_follow_the_hint_then_the_touch_screen_size() {
        assert_eq!(device_type(true, false, 1920.0, 1080.0), "mobile");
        assert_eq!(device_type(false, true, 390.0, 844.0), "mobile");
        assert_eq!(device_type(false, true, 820.0, 1180.0), "tablet");
        assert_eq!(device_type(false, true, 1920.0, 1200.0), "desktop");
        assert_eq!(device_type(false, false, 390.0, 844.0), "desktop");
        assert_eq!(device_type(false, true, f64::NAN, 800.0), "mobile");
    }
    use crate::config::default_sensitive_params;

    fn node(tag: &str, id: Option<&str>, classes: &[&str]) -> Node {
        Node {
            tag: tag.into(),
            id: id.map(Into::into),
            classes: classes.iter().map(|c| (*c).into()).collect(),
        }
    }

    fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
        match v {
            Value::Object(e) => e.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn a_link_records_tag_text_href_and_outbound() {
        let link = ClickTarget {
            node: node("a", None, &["cta", "big", "blue"]),
            ancestors: vec![
                node("li", None, &[]),
                node("ul", None, &["menu"]),
                node("nav", Some("top"), &[]),
                node("body", None, &[]),
            ],
            text: "  Read \n the   docs  ".into(),
            href: Some("https://docs.example/start?token=secret&lang=en".into()),
            data: vec![
                ("plan".into(), "pro".into()),
                ("event".into(), "docs".into()),
            ],
            ..ClickTarget::default()
        };
        let p = link.props("shop.example", &default_sensitive_params());
        assert_eq!(get(&p, "tag"), Some(&s("a")));
        assert_eq!(get(&p, "classes"), Some(&s("cta big blue")));
        assert_eq!(
            get(&p, "selector"),
            Some(&s("nav#top > ul.menu > li > a.cta.big"))
        );
        assert_eq!(get(&p, "text"), Some(&s("Read the docs")));
        assert_eq!(
            get(&p, "href"),
            Some(&s("https://docs.example/start?lang=en"))
        );
        assert_eq!(get(&p, "outbound"), Some(&Value::Bool(true)));
        assert_eq!(get(&p, "plan"), Some(&s("pro")));
        assert_eq!(get(&p, "event"), None);
        assert_eq!(link.event_name(), Some("docs"));
    }

    #[test]
    fn same_host_links_are_not_outbound() {
        let link = ClickTarget {
            node: node("a", None, &[]),
            href: Some("http://shop.example:8080/cart".into()),
            ..ClickTarget::default()
        };
        let p = link.props("shop.example:8080", &[]);
        assert_eq!(get(&p, "outbound"), Some(&Value::Bool(false)));
        let mail = ClickTarget {
            href: Some("mailto:a@b.co".into()),
            ..link
        };
        assert_eq!(
            get(&mail.props("shop.example", &[]), "outbound"),
            Some(&Value::Bool(false))
        );
    }

    #[test]
    fn private_fields_and_inputs_never_give_text() {
        for ty in ["password", "EMAIL", "tel"] {
            let field = ClickTarget {
                node: node("button", None, &[]),
                text: "jane@example.com".into(),
                input_type: Some(ty.into()),
                ..ClickTarget::default()
            };
            assert_eq!(get(&field.props("x", &[]), "text"), None, "{ty}");
        }
        let submit = ClickTarget {
            node: node("input", Some("go"), &[]),
            text: "secret value".into(),
            input_type: Some("submit".into()),
            ..ClickTarget::default()
        };
        let p = submit.props("x", &[]);
        assert_eq!(get(&p, "text"), None);
        assert_eq!(get(&p, "selector"), Some(&s("input#go")));
    }

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        let long = ClickTarget {
            node: node("button", None, &[]),
            text: "é".repeat(150),
            ..ClickTarget::default()
        };
        assert_eq!(
            get(&long.props("x", &[]), "text"),
            Some(&s(&"é".repeat(MAX_CLICK_TEXT)))
        );
    }

    #[test]
    fn host_parsing() {
        assert_eq!(
            host_of("https://user:pw@a.example:8443/x?y#z"),
            Some("a.example:8443")
        );
        assert_eq!(host_of("http://b.example"), Some("b.example"));
        assert_eq!(host_of("/relative"), None);
        assert_eq!(host_of("https://a@b@é.example#x"), Some("é.example"));
        assert_eq!(host_of("http://"), Some(""));
    }
}
