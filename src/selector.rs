//! Kubernetes label and field selectors: parsing of the query-string syntax
//! (`labelSelector=app=a,tier!=db`, `fieldSelector=metadata.namespace=x`) and
//! matching against objects.
//!
//! Label selectors parse into kube-core's [`Selector`] (kube-core has the
//! types and the matching but no string parser), so a selector parsed here can
//! be handed to kube's `ListParams` or matched with [`SelectorExt::matches`].
//! The grammar follows apimachinery's `labels.Parse`: `key`, `!key`,
//! `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
//! joined by commas. The set-based `>`/`<` operators have no kube-core
//! counterpart and are rejected with an error that says so.

use std::collections::{BTreeMap, BTreeSet};

pub use kube::core::{Expression, Selector, SelectorExt};
use serde_json::Value;

/// A selector that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The label selector is malformed. The reason shows the offending
    /// token as typed, with its position (characters counted from 1).
    #[error("unable to parse label selector {input:?}: {reason}")]
    Label {
        /// The selector as given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The field selector is malformed.
    #[error("invalid field selector {input:?}: {reason}")]
    Field {
        /// The selector as given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// Parses a label selector a person typed. The empty string selects
/// everything; an empty value set (`app in ()`) is refused, as the API
/// refuses an `In`/`NotIn` requirement without values.
pub fn parse_label_selector(input: &str) -> Result<Selector, Error> {
    parse(input, false)
}

/// Parses a label selector as the API server's query parameter parser
/// (apimachinery's `labels.Parse`) does: there `app in ()` is accepted and
/// reads as `app in ("")`. For the simulator, which must answer as a server.
pub fn parse_label_selector_as_server(input: &str) -> Result<Selector, Error> {
    parse(input, true)
}

fn parse(input: &str, empty_sets: bool) -> Result<Selector, Error> {
    let fail = |reason: String| Error::Label {
        input: input.to_string(),
        reason,
    };
    let tokens = lex(input);
    let mut parser = LabelParser {
        tokens,
        pos: 0,
        empty_sets,
    };
    let exprs = parser.parse().map_err(fail)?;
    Ok(Selector::from_iter(exprs))
}

/// Label lexer tokens, as in apimachinery's selector lexer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Comma,
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Open,
    Close,
    In,
    NotIn,
    Greater,
    Less,
}

impl Token {
    /// The token as the user typed it, for error messages.
    fn text(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::Comma => ",",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Bang => "!",
            Token::Open => "(",
            Token::Close => ")",
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Greater => ">",
            Token::Less => "<",
        }
    }
}

/// A token and where it starts: a character position counted from 1, the
/// way an editor's column is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spanned {
    token: Token,
    at: usize,
}

impl Spanned {
    /// `"=" at position 4`: what error messages show of a token.
    fn describe(&self) -> String {
        format!("{:?} at position {}", self.token.text(), self.at)
    }
}

fn lex(input: &str) -> Vec<Spanned> {
    let mut out = Vec::new();
    let mut chars = input.chars().enumerate().peekable();
    while let Some(&(i, c)) = chars.peek() {
        let at = i + 1;
        let mut single = |token: Token, chars: &mut std::iter::Peekable<_>| {
            Iterator::next(chars);
            out.push(Spanned { token, at });
        };
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => single(Token::Comma, &mut chars),
            '(' => single(Token::Open, &mut chars),
            ')' => single(Token::Close, &mut chars),
            '>' => single(Token::Greater, &mut chars),
            '<' => single(Token::Less, &mut chars),
            '=' | '!' => {
                chars.next();
                let doubled = chars.peek().is_some_and(|&(_, n)| n == '=');
                if doubled {
                    chars.next();
                }
                let token = match (c, doubled) {
                    ('=', true) => Token::DoubleEquals,
                    ('=', false) => Token::Equals,
                    (_, true) => Token::NotEquals,
                    (_, false) => Token::Bang,
                };
                out.push(Spanned { token, at });
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || ",()=!<>".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                let token = match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                };
                out.push(Spanned { token, at });
            }
        }
    }
    out
}

struct LabelParser {
    tokens: Vec<Spanned>,
    pos: usize,
    /// Whether `()` is a set holding the empty value (the server's reading)
    /// rather than an error.
    empty_sets: bool,
}

impl LabelParser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|s| &s.token)
    }

    fn next(&mut self) -> Option<Spanned> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// `unexpected "=" at position 4, expected ...`
    fn unexpected(found: &Spanned, expected: &str) -> String {
        format!("unexpected {}, expected {expected}", found.describe())
    }

    fn parse(&mut self) -> Result<Vec<Expression>, String> {
        let mut exprs = Vec::new();
        if self.tokens.is_empty() {
            return Ok(exprs);
        }
        loop {
            exprs.push(self.requirement()?);
            match self.next() {
                None => return Ok(exprs),
                Some(Spanned {
                    token: Token::Comma,
                    at,
                }) => {
                    if self.peek().is_none() {
                        return Err(format!("trailing \",\" at position {at}"));
                    }
                }
                Some(t) => return Err(Self::unexpected(&t, "\",\" or the end")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Expression, String> {
        if self.peek() == Some(&Token::Bang) {
            self.next();
            let key = self.key()?;
            return Ok(Expression::DoesNotExist(key));
        }
        let key = self.key()?;
        match self.peek() {
            None | Some(Token::Comma) => Ok(Expression::Exists(key)),
            Some(Token::Equals) | Some(Token::DoubleEquals) => {
                self.next();
                Ok(Expression::Equal(key, self.value()?))
            }
            Some(Token::NotEquals) => {
                self.next();
                Ok(Expression::NotEqual(key, self.value()?))
            }
            Some(Token::In) => {
                self.next();
                Ok(Expression::In(key, self.value_set("in")?))
            }
            Some(Token::NotIn) => {
                self.next();
                Ok(Expression::NotIn(key, self.value_set("notin")?))
            }
            Some(Token::Greater) | Some(Token::Less) => Err(format!(
                "operators '>' and '<' on {key:?} are not supported"
            )),
            Some(_) => {
                let found = &self.tokens[self.pos];
                Err(Self::unexpected(
                    found,
                    &format!("an operator (=, ==, !=, in, notin) after key {key:?}"),
                ))
            }
        }
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Spanned {
                token: Token::Ident(k),
                ..
            }) => {
                validate_label_key(&k)?;
                Ok(k)
            }
            Some(t) => Err(Self::unexpected(&t, "a label key")),
            None => Err("expected a label key, found the end".into()),
        }
    }

    fn value(&mut self) -> Result<String, String> {
        match self.peek() {
            None | Some(Token::Comma) => Ok(String::new()),
            Some(_) => match self.next() {
                Some(Spanned {
                    token: Token::Ident(v),
                    ..
                }) => {
                    validate_label_value(&v)?;
                    Ok(v)
                }
                Some(t) => Err(Self::unexpected(&t, "a label value")),
                None => unreachable!("peeked a token"),
            },
        }
    }

    /// `(a, b)` after `in`/`notin` (`op`). Unless `empty_sets`, an empty set
    /// is refused: typed by a person it matches only the empty value (`in`)
    /// or nearly everything (`notin`), surely not what was meant.
    fn value_set(&mut self, op: &str) -> Result<BTreeSet<String>, String> {
        let open = match self.next() {
            Some(
                open @ Spanned {
                    token: Token::Open, ..
                },
            ) => open,
            Some(t) => return Err(Self::unexpected(&t, &format!("\"(\" after {op:?}"))),
            None => return Err(format!("expected \"(\" after {op:?}, found the end")),
        };
        if self.peek() == Some(&Token::Close) && !self.empty_sets {
            return Err(format!(
                "empty value set \"()\" at position {}: {op:?} needs at least one value",
                open.at
            ));
        }
        let mut values = BTreeSet::new();
        loop {
            let v = match self.peek() {
                Some(Token::Comma) | Some(Token::Close) => String::new(),
                _ => self.value()?,
            };
            values.insert(v);
            match self.next() {
                Some(Spanned {
                    token: Token::Comma,
                    ..
                }) => continue,
                Some(Spanned {
                    token: Token::Close,
                    ..
                }) => return Ok(values),
                Some(t) => return Err(Self::unexpected(&t, "\",\" or \")\" in the value set")),
                None => {
                    return Err(format!(
                        "value set opened at position {} is not closed with \")\"",
                        open.at
                    ))
                }
            }
        }
    }
}

/// A DNS-1123-ish name part: alphanumerics, `-`, `_`, `.`, starting and
/// ending alphanumeric, at most 63 characters.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "invalid label key {key:?}: prefix must be a DNS subdomain"
            ));
        }
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "invalid label key {key:?}: name part must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    Ok(())
}

fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?}: must be empty or 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ))
    }
}

/// The labels of a JSON object (`metadata.labels`), as kube-core's matcher
/// wants them. Missing or non-string labels are left out.
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a field selector term asks for equality or inequality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `field=value` or `field==value`.
    Equal,
    /// `field!=value`.
    NotEqual,
}

/// One `field op value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// The field path, e.g. `metadata.namespace`.
    pub field: String,
    /// The comparison.
    pub op: FieldOp,
    /// The value compared against (unescaped).
    pub value: String,
}

/// A parsed field selector: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The terms, all of which must match.
    pub terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses `a=b,c!=d` with apimachinery's escaping (`\,`, `\=`, `\\`).
    /// The empty string selects everything.
    pub fn parse(input: &str) -> Result<FieldSelector, Error> {
        let fail = |reason: String| Error::Field {
            input: input.to_string(),
            reason,
        };
        let mut terms = Vec::new();
        if input.trim().is_empty() {
            return Ok(FieldSelector { terms });
        }
        for raw in split_unescaped(input, ',').map_err(fail)? {
            let term = parse_field_term(&raw).map_err(fail)?;
            terms.push(term);
        }
        Ok(FieldSelector { terms })
    }

    /// Whether no term restricts anything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Matches using `lookup` to read a field's value as a string; a field
    /// that is absent compares as the empty string, as on a real server.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let actual = lookup(&t.field).unwrap_or_default();
            match t.op {
                FieldOp::Equal => actual == t.value,
                FieldOp::NotEqual => actual != t.value,
            }
        })
    }

    /// The value a term requires with `=`, if any (used to narrow a list to
    /// one namespace or one name).
    pub fn required(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.op == FieldOp::Equal)
            .map(|t| t.value.as_str())
    }
}

/// Splits on `sep` where it is not escaped by a backslash, keeping escapes
/// in the parts (the term parser unescapes).
fn split_unescaped(input: &str, sep: char) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => return Err("trailing backslash".into()),
            }
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    Ok(parts)
}

fn parse_field_term(raw: &str) -> Result<FieldTerm, String> {
    // Find the first unescaped operator; `!=` and `==` before `=`.
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                return field_term(raw, i, 2, FieldOp::NotEqual);
            }
            b'=' if bytes.get(i + 1) == Some(&b'=') => {
                return field_term(raw, i, 2, FieldOp::Equal);
            }
            b'=' => return field_term(raw, i, 1, FieldOp::Equal),
            _ => {}
        }
        i += 1;
    }
    Err(format!("term {raw:?} has no operator ('=', '==' or '!=')"))
}

fn field_term(raw: &str, at: usize, len: usize, op: FieldOp) -> Result<FieldTerm, String> {
    let field = raw[..at].trim();
    if field.is_empty() {
        return Err(format!("term {raw:?} has an empty field name"));
    }
    let value = unescape(&raw[at + len..])?;
    Ok(FieldTerm {
        field: field.to_string(),
        op,
        value,
    })
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => return Err(format!("invalid escape sequence '\\{n}'")),
                None => return Err("trailing backslash".into()),
            }
        } else if c == '=' || c == '!' {
            return Err(format!("unescaped {c:?} in value {s:?}"));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Reads a dotted field path (`spec.nodeName`) from a JSON object as a
/// string, the way field selectors compare: strings as is, booleans and
/// numbers printed.
pub fn field_value(object: &Value, path: &str) -> Option<String> {
    let mut cur = object;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        let s =
            parse_label_selector("app=a,tier!=db,env==prod,x in (1,2),y notin (3),z,!w").unwrap();
        let expected = Selector::from_iter(vec![
            Expression::Equal("app".into(), "a".into()),
            Expression::NotEqual("tier".into(), "db".into()),
            Expression::Equal("env".into(), "prod".into()),
            Expression::In("x".into(), ["1".into(), "2".into()].into()),
            Expression::NotIn("y".into(), ["3".into()].into()),
            Expression::Exists("z".into()),
            Expression::DoesNotExist("w".into()),
        ]);
        assert_eq!(s, expected);
    }

    #[test]
    fn matching_follows_kubernetes() {
        let s = parse_label_selector("app=a,tier!=db").unwrap();
        assert!(s.matches(&labels(&[("app", "a"), ("tier", "web")])));
        assert!(
            s.matches(&labels(&[("app", "a")])),
            "!= matches a missing key"
        );
        assert!(!s.matches(&labels(&[("app", "a"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "b")])));
        let s = parse_label_selector("env in (a, b), !gone").unwrap();
        assert!(s.matches(&labels(&[("env", "b")])));
        assert!(!s.matches(&labels(&[("env", "b"), ("gone", "")])));
        assert!(!s.matches(&labels(&[])));
    }

    #[test]
    fn empty_selects_all_and_whitespace_is_ignored() {
        assert!(parse_label_selector("").unwrap().selects_all());
        let s = parse_label_selector("  app = a ,  example.com/role in ( x , y ) ").unwrap();
        assert!(s.matches(&labels(&[("app", "a"), ("example.com/role", "y")])));
        assert_eq!(
            parse_label_selector("k=").unwrap(),
            Selector::from_iter(vec![Expression::Equal("k".into(), String::new())])
        );
    }

    #[test]
    fn rejects_malformed_label_selectors() {
        for bad in [
            "app=a,",
            "=a",
            "app in a",
            "app in (a",
            "app notin (a,b",
            "app=a=b",
            "bad key=1",
            "-app=1",
            "app=-x",
            "x > 3",
            "!",
            "app (",
            "UPPER.example.com/x=1",
        ] {
            let err = parse_label_selector(bad).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err} names the input");
        }
    }

    #[test]
    fn errors_show_what_was_typed_and_where() {
        let reason = |input: &str| match parse_label_selector(input).unwrap_err() {
            Error::Label { reason, .. } => reason,
            other => panic!("{other}"),
        };
        for (input, want) in [
            ("app=a=b", "unexpected \"=\" at position 6, expected \",\" or the end"),
            ("a b", "unexpected \"b\" at position 3, expected an operator (=, ==, !=, in, notin) after key \"a\""),
            ("=a", "unexpected \"=\" at position 1, expected a label key"),
            ("!", "expected a label key, found the end"),
            ("a=!", "unexpected \"!\" at position 3, expected a label value"),
            ("app in a", "unexpected \"a\" at position 8, expected \"(\" after \"in\""),
            ("app in (a b)", "unexpected \"b\" at position 11, expected \",\" or \")\" in the value set"),
            ("app in (a", "value set opened at position 8 is not closed with \")\""),
            ("app=a,", "trailing \",\" at position 6"),
            ("app in ()", "empty value set \"()\" at position 8: \"in\" needs at least one value"),
            ("x,app notin ( )", "empty value set \"()\" at position 13: \"notin\" needs at least one value"),
        ] {
            assert_eq!(reason(input), want, "{input}");
        }
        // The server's parser reads `()` as the empty value.
        assert_eq!(
            parse_label_selector_as_server("app in ()").unwrap(),
            Selector::from_iter(vec![Expression::In("app".into(), [String::new()].into())])
        );
        // An empty value inside a set is a value (the empty label value).
        assert_eq!(
            parse_label_selector("app in (a,)").unwrap(),
            Selector::from_iter(vec![Expression::In(
                "app".into(),
                ["a".into(), String::new()].into()
            )])
        );
    }

    #[test]
    fn parses_and_matches_field_selectors() {
        let f = FieldSelector::parse("metadata.namespace=x,metadata.name!=y,status.phase==Running")
            .unwrap();
        assert_eq!(f.terms.len(), 3);
        assert_eq!(f.required("metadata.namespace"), Some("x"));
        assert_eq!(f.required("metadata.name"), None);
        let obj = serde_json::json!({"metadata": {"namespace": "x", "name": "z"}, "status": {"phase": "Running"}});
        assert!(f.matches(|p| field_value(&obj, p)));
        let obj2 = serde_json::json!({"metadata": {"namespace": "x", "name": "y"}, "status": {"phase": "Running"}});
        assert!(!f.matches(|p| field_value(&obj2, p)));
        assert!(FieldSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn field_selector_escapes() {
        let f = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(f.terms[0].value, r"a,b=c\d");
        for bad in ["metadata.name", "=x", r"a=b\q", "a=b\\", "a=b=c"] {
            let err = FieldSelector::parse(bad).expect_err(bad);
            assert!(matches!(err, Error::Field { .. }), "{bad}: {err}");
        }
    }
}
