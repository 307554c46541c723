//! Card descriptions as Markdown, rendered safely on the server and in the
//! browser alike.
//!
//! The text is parsed into a small tree of known elements, and the tree is
//! rendered as Leptos views: no HTML string is ever built or injected, so
//! raw HTML in a description is shown as the text it is, and a script can
//! only ever be characters on the page. Links keep only schemes that open
//! a page or a mail (`http`, `https`, `mailto`, and paths on this site);
//! any other (`javascript:`, `data:`) leaves its text and drops the link.
//! Images are shown as links, so a description cannot make every reader's
//! browser fetch a tracking pixel.

use leptos::prelude::*;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Deeper nesting than this (a thousand `>` in a row, say) is flattened:
/// the tree stays shallow, so rendering it cannot exhaust the stack.
const MAX_DEPTH: usize = 16;

/// One node of a rendered description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Text(String),
    Code(String),
    Break,
    Rule,
    Element(Kind, Vec<Node>),
}

/// The elements a description may contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Paragraph,
    /// A heading, shown as a strong paragraph: the card's title is the
    /// heading, and the page's outline stays the page's.
    Heading,
    Quote,
    CodeBlock,
    List {
        start: Option<u64>,
    },
    Item,
    Emphasis,
    Strong,
    Strike,
    /// A link to a URL with an allowed scheme.
    Link(String),
}

/// Whether a link target may be followed from a description.
pub fn safe_href(href: &str) -> bool {
    let lower = href.trim_start().to_ascii_lowercase();
    if lower.starts_with("//") {
        return false;
    }
    if lower.starts_with('/') || lower.starts_with('#') {
        return true;
    }
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

/// Parses `text` into the nodes to render.
pub fn parse(text: &str) -> Vec<Node> {
    // Each open element with the children gathered so far; `None` for a
    // start that is not shown as an element (too deep, a dropped link, a
    // kind not rendered), whose children go to its parent.
    let mut stack: Vec<(Option<Kind>, Vec<Node>)> = vec![(None, Vec::new())];
    // Adjacent text is joined: one text node to render, not several.
    let push = |stack: &mut Vec<(Option<Kind>, Vec<Node>)>, node: Node| {
        if let Some((_, children)) = stack.last_mut() {
            match (children.last_mut(), node) {
                (Some(Node::Text(last)), Node::Text(more)) => last.push_str(&more),
                (_, node) => children.push(node),
            }
        }
    };
    for event in Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(tag) => {
                let shown = stack.iter().filter(|(k, _)| k.is_some()).count();
                let kind = (shown < MAX_DEPTH).then(|| kind_of(tag)).flatten();
                stack.push((kind, Vec::new()));
            }
            Event::End(end) => {
                if stack.len() < 2 {
                    continue;
                }
                let (kind, children) = stack.pop().unwrap_or((None, Vec::new()));
                match kind {
                    Some(kind) => push(&mut stack, Node::Element(kind, children)),
                    None => {
                        for child in children {
                            push(&mut stack, child);
                        }
                        // Blocks that are not shown still end a line.
                        if matches!(end, TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item) {
                            push(&mut stack, Node::Break);
                        }
                    }
                }
            }
            Event::Text(t) | Event::Html(t) | Event::InlineHtml(t) => {
                push(&mut stack, Node::Text(t.into_string()))
            }
            Event::Code(t) => push(&mut stack, Node::Code(t.into_string())),
            Event::SoftBreak => push(&mut stack, Node::Text(" ".into())),
            Event::HardBreak => push(&mut stack, Node::Break),
            Event::Rule => push(&mut stack, Node::Rule),
            Event::TaskListMarker(done) => push(
                &mut stack,
                Node::Text(if done { "☑ " } else { "☐ " }.into()),
            ),
            Event::FootnoteReference(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                push(&mut stack, Node::Text(t.into_string()))
            }
        }
    }
    // Unclosed elements cannot happen with a well-behaved parser; fold any
    // left into the root so nothing is lost.
    while stack.len() > 1 {
        let (kind, children) = stack.pop().unwrap_or((None, Vec::new()));
        match kind {
            Some(kind) => push(&mut stack, Node::Element(kind, children)),
            None => stack
                .last_mut()
                .map(|(_, c)| c.extend(children))
                .unwrap_or_default(),
        }
    }
    stack.pop().map(|(_, nodes)| nodes).unwrap_or_default()
}

/// The element a start tag becomes, if it is shown as one.
fn kind_of(tag: Tag<'_>) -> Option<Kind> {
    Some(match tag {
        Tag::Paragraph => Kind::Paragraph,
        Tag::Heading { .. } => Kind::Heading,
        Tag::BlockQuote(_) => Kind::Quote,
        Tag::CodeBlock(_) => Kind::CodeBlock,
        Tag::List(start) => Kind::List { start },
        Tag::Item => Kind::Item,
        Tag::Emphasis => Kind::Emphasis,
        Tag::Strong => Kind::Strong,
        Tag::Strikethrough => Kind::Strike,
        Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } if safe_href(&dest_url) => {
            Kind::Link(dest_url.into_string())
        }
        _ => return None,
    })
}

/// A description rendered from Markdown.
#[component]
pub fn Markdown(text: String) -> impl IntoView {
    nodes_view(parse(&text))
}

fn nodes_view(nodes: Vec<Node>) -> AnyView {
    nodes.into_iter().map(node_view).collect_view().into_any()
}

fn node_view(node: Node) -> AnyView {
    match node {
        Node::Text(t) => t.into_any(),
        Node::Code(t) => view! { <code>{t}</code> }.into_any(),
        Node::Break => view! { <br/> }.into_any(),
        Node::Rule => view! { <hr/> }.into_any(),
        Node::Element(kind, children) => {
            let inner = nodes_view(children);
            match kind {
                Kind::Paragraph => view! { <p>{inner}</p> }.into_any(),
                Kind::Heading => view! { <p class="md-heading">{inner}</p> }.into_any(),
                Kind::Quote => view! { <blockquote>{inner}</blockquote> }.into_any(),
                Kind::CodeBlock => view! { <pre><code>{inner}</code></pre> }.into_any(),
                Kind::List { start: None } => view! { <ul>{inner}</ul> }.into_any(),
                Kind::List { start: Some(n) } => {
                    view! { <ol start=n.to_string()>{inner}</ol> }.into_any()
                }
                Kind::Item => view! { <li>{inner}</li> }.into_any(),
                Kind::Emphasis => view! { <em>{inner}</em> }.into_any(),
                Kind::Strong => view! { <strong>{inner}</strong> }.into_any(),
                Kind::Strike => view! { <del>{inner}</del> }.into_any(),
                Kind::Link(href) => {
                    view! { <a href=href rel="nofollow noopener noreferrer ugc">{inner}</a> }
                        .into_any()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Node {
        Node::Text(s.into())
    }

    fn el(kind: Kind, children: Vec<Node>) -> Node {
        Node::Element(kind, children)
    }

    #[test]
    fn common_markdown_becomes_elements() {
        let nodes = parse("**bold** and *it* `code`\n\n- one\n- [two](https://example.org)");
        assert_eq!(
            nodes,
            vec![
                el(
                    Kind::Paragraph,
                    vec![
                        el(Kind::Strong, vec![text("bold")]),
                        text(" and "),
                        el(Kind::Emphasis, vec![text("it")]),
                        text(" "),
                        Node::Code("code".into()),
                    ]
                ),
                el(
                    Kind::List { start: None },
                    vec![
                        el(Kind::Item, vec![text("one")]),
                        el(
                            Kind::Item,
                            vec![el(
                                Kind::Link("https://example.org".into()),
                                vec![text("two")]
                            )]
                        ),
                    ]
                ),
            ]
        );
    }

    #[test]
    fn raw_html_stays_text() {
        let nodes = parse("<script>alert(1)</script>\n\nhi <img src=x onerror=alert(1)>");
        let flat = format!("{nodes:?}");
        assert!(flat.contains("<script>"), "{flat}");
        assert!(flat.contains("<img src=x onerror=alert(1)>"), "{flat}");
        fn no_elements_but_paragraphs(nodes: &[Node]) -> bool {
            nodes.iter().all(|n| match n {
                Node::Element(Kind::Paragraph, c) => no_elements_but_paragraphs(c),
                Node::Element(..) => false,
                _ => true,
            })
        }
        assert!(no_elements_but_paragraphs(&nodes), "{flat}");
    }

    #[test]
    fn unsafe_links_keep_their_text_only() {
        for href in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
            "vbscript:x",
            "//evil.example/x",
        ] {
            let nodes = parse(&format!("[click](<{href}>)"));
            assert_eq!(
                nodes,
                vec![el(Kind::Paragraph, vec![text("click")])],
                "{href}"
            );
        }
        for href in [
            "https://a.example/x",
            "http://a.example",
            "mailto:a@b.example",
            "/b/2",
            "#top",
        ] {
            assert!(safe_href(href), "{href}");
        }
    }

    #[test]
    fn images_are_links_and_deep_nesting_is_flattened() {
        let nodes = parse("![a cat](https://a.example/cat.png)");
        assert_eq!(
            nodes,
            vec![el(
                Kind::Paragraph,
                vec![el(
                    Kind::Link("https://a.example/cat.png".into()),
                    vec![text("a cat")]
                )]
            )]
        );
        fn depth(nodes: &[Node]) -> usize {
            nodes
                .iter()
                .map(|n| match n {
                    Node::Element(_, c) => 1 + depth(c),
                    _ => 0,
                })
                .max()
                .unwrap_or(0)
        }
        let deep = format!("{}deep", ">".repeat(5_000));
        let nodes = parse(&deep);
        assert!(depth(&nodes) <= MAX_DEPTH, "{}", depth(&nodes));
        assert!(format!("{nodes:?}").contains("deep"));
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn rendering_on_the_server_escapes_what_is_text() {
        let html = view! { <Markdown text="<b>x</b> **y** [z](javascript:alert(1))".to_string()/> }
            .to_html();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt; "), "{html}");
        assert!(html.contains("<strong>y"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("javascript"), "{html}");
    }
}
