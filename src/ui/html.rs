//! HTML output with escaping by default: every piece of recorded text goes through [`esc`]
//! (`Html::text`); only literal markup written in this module's callers goes in raw.

use std::fmt::Write as _;

/// Escape text for an HTML element body or a double-quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // control characters (but tab and newlines) would make the page invalid
            c if c.is_control() && c != '\n' && c != '\t' && c != '\r' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query value (everything but unreserved characters).
pub fn url(s: &str) -> String {
    crate::config::percent(s)
}

/// A page being written. `text` escapes, `raw` does not (literal markup only).
#[derive(Default)]
pub struct Html(pub String);

impl Html {
    pub fn raw(&mut self, s: &str) -> &mut Self {
        self.0.push_str(s);
        self
    }
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.0.push_str(&esc(s));
        self
    }
    /// `<tag attrs>text</tag>`, the text escaped (`attrs` is literal markup).
    pub fn el(&mut self, tag: &str, attrs: &str, text: &str) -> &mut Self {
        let _ = write!(
            self.0,
            "<{tag}{}{attrs}>",
            if attrs.is_empty() { "" } else { " " }
        );
        self.text(text);
        let _ = write!(self.0, "</{tag}>");
        self
    }
    /// `<a href="HREF">text</a>`; `href` is escaped as an attribute (build it with [`url`]).
    pub fn link(&mut self, href: &str, text: &str) -> &mut Self {
        let _ = write!(self.0, "<a href=\"{}\">", esc(href));
        self.text(text);
        self.0.push_str("</a>");
        self
    }
}

/// A whole page: the shared header with navigation, then `body`.
pub fn page(title: &str, nav: &str, body: &str, refresh: bool) -> String {
    let mut h = Html::default();
    h.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .raw("<meta name=\"color-scheme\" content=\"light dark\">");
    if refresh {
        // a running run: the page reloads itself every 2 seconds until the run ends
        h.raw("<meta http-equiv=\"refresh\" content=\"2\">");
    }
    h.el("title", "", &format!("{title} · mlrun"))
        .raw("<link rel=\"stylesheet\" href=\"/static/style.css\">")
        .raw("<script src=\"/static/app.js\" defer></script></head><body>")
        .raw("<a class=\"skip\" href=\"#main\">Skip to content</a>")
        .raw("<header><a class=\"brand\" href=\"/runs\">mlrun</a><nav aria-label=\"main\">");
    for (href, name) in [("/runs", "Runs"), ("/lineage", "Lineage")] {
        let current = if name == nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(h.0, "<a href=\"{href}\"{current}>{name}</a>");
    }
    h.raw("</nav><span class=\"ro\">read-only</span></header><main id=\"main\">")
        .raw(body)
        .raw("</main></body></html>\n");
    h.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert(\"x\")</script>&'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(esc("</textarea>"), "&lt;/textarea&gt;");
        assert_eq!(esc("a\u{0}b"), "a\u{FFFD}b");
    }

    #[test]
    fn text_and_links_are_escaped() {
        let mut h = Html::default();
        h.el("td", "class=\"x\"", "<b>")
            .link(&format!("/artifact?path={}", url("a\"b&c")), "<i>");
        assert_eq!(
            h.0,
            "<td class=\"x\">&lt;b&gt;</td><a href=\"/artifact?path=a%22b%26c\">&lt;i&gt;</a>"
        );
    }

    #[test]
    fn url_encoding_keeps_paths_readable() {
        assert_eq!(url("data/train set.csv"), "data/train%20set.csv");
        assert_eq!(url("a&b=c#d"), "a%26b%3Dc%23d");
        assert_eq!(url("é"), "%C3%A9");
    }
}
