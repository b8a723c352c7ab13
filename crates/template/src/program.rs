//! Parsing: gotmpl's lexer and parser build the tree, then the checks Go's
//! parser makes and gotmpl's leaves out (unclosed or stray `{{end}}` and
//! `{{else}}`, undefined variables and functions, literals as later pipeline
//! stages, `{{break}}` outside `{{range}}`), all with Go's error text.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::parse::{
    BranchNode, CommandNode, DefineNode, Expr, ListNode, Node, Parser, PipeNode, Pos,
};

use crate::funcs;

/// The template's name in every error message, as Flux names it.
pub(crate) const NAME: &str = "commit message";

pub(crate) struct Program {
    pub src: String,
    pub tree: Arc<ListNode>,
    pub defines: BTreeMap<String, Arc<ListNode>>,
}

/// Parses and checks `src`; the error is Go's `template: NAME:LINE: msg`.
pub(crate) fn compile(src: &str) -> Result<Program, String> {
    let parsed = Parser::with_name(Some(NAME), src, "{{", "}}").and_then(|p| p.parse());
    let blocks = check_blocks(src);
    let (tree, defines) = match (parsed, blocks) {
        (Ok(parsed), Ok(())) => parsed,
        (Ok(_), Err((_, e))) => return Err(e),
        // Go reports the first problem in the source; on the same line the
        // block error, which has Go's wording where gotmpl's differs.
        (Err(e), blocks) => {
            let (line, msg) = match e {
                gotmpl::TemplateError::Parse { line, message, .. }
                | gotmpl::TemplateError::Lex { line, message, .. } => {
                    (line, err_at(line, &message))
                }
                other => (0, format!("template: {NAME}: {other}")),
            };
            return Err(match blocks {
                Err((block_line, block)) if block_line <= line => block,
                _ => msg,
            });
        }
    };
    let mut checker = Checker {
        src,
        scopes: vec![vec!["$".into()]],
        ranges: 0,
    };
    checker.list(&tree)?;
    let mut map = BTreeMap::new();
    for DefineNode { name, body, .. } in defines {
        let mut checker = Checker {
            src,
            scopes: vec![vec!["$".into()]],
            ranges: 0,
        };
        checker.list(&body)?;
        map.insert(name.to_string(), Arc::new(body));
    }
    Ok(Program {
        src: src.to_string(),
        tree: Arc::new(tree),
        defines: map,
    })
}

fn err_at(line: usize, msg: &str) -> String {
    format!("template: {NAME}:{line}: {msg}")
}

/// The first two words of each action, with the action's line: a small
/// scan that steps over comments and quoted strings (gotmpl's lexer, which
/// already accepted the source, is not public).
fn action_keywords(src: &str) -> Vec<(&str, &str, usize)> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = src[i..].find("{{") {
        let start = i + off;
        let line = 1 + bytes[..start].iter().filter(|&&b| b == b'\n').count();
        let mut j = start + 2;
        if bytes.get(j) == Some(&b'-') && bytes.get(j + 1).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if src[j..].starts_with("/*") {
            i = src[j..].find("*/").map_or(src.len(), |e| j + e + 2);
            continue;
        }
        let word = |from: usize| {
            let from = from + src[from..].len() - src[from..].trim_start().len();
            let to = src[from..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(src.len(), |e| from + e);
            (from, to)
        };
        let (w1, word_end) = word(j);
        let (w2, w2_end) = word(word_end);
        out.push((&src[w1..word_end], &src[w2..w2_end], line));
        // Skip to the closing delimiter, stepping over string literals.
        let mut k = word_end;
        while k < bytes.len() && !bytes[k..].starts_with(b"}}") {
            match bytes[k] {
                q @ (b'"' | b'\'') => {
                    k += 1;
                    while k < bytes.len() && bytes[k] != q {
                        k += if bytes[k] == b'\\' { 2 } else { 1 };
                    }
                    k += 1;
                }
                b'`' => {
                    k += 1;
                    while k < bytes.len() && bytes[k] != b'`' {
                        k += 1;
                    }
                    k += 1;
                }
                _ => k += 1,
            }
        }
        // Past the closing delimiter; a string left open ends the scan.
        i = (k + 2).min(src.len());
        while !src.is_char_boundary(i) {
            i += 1;
        }
    }
    out
}

/// gotmpl's parser quietly accepts `{{if .X}}` without `{{end}}` and stops at
/// a stray `{{end}}`; Go refuses both.
fn check_blocks(src: &str) -> Result<(), (usize, String)> {
    let actions = action_keywords(src);
    // Open blocks, each with whether its plain `{{else}}` was seen.
    let mut open: Vec<(&str, bool)> = Vec::new();
    for &(word, next_word, line) in &actions {
        match word {
            "if" | "range" | "with" | "define" | "block" => open.push((word, false)),
            "else" => {
                match open.last_mut() {
                    Some(("if" | "range" | "with", seen_else)) => {
                        if *seen_else {
                            return Err((line, err_at(line, "expected end; found {{else}}")));
                        }
                        // `{{else if}}` and `{{else with}}` chain on; a plain
                        // `{{else}}` must be the last branch.
                        if !matches!(next_word, "if" | "with") {
                            *seen_else = true;
                        }
                    }
                    _ => return Err((line, err_at(line, "unexpected {{else}}"))),
                }
            }
            // The guard closes the innermost block; only a stray end fails.
            "end" if open.pop().is_none() => {
                return Err((line, err_at(line, "unexpected {{end}}")));
            }
            _ => {}
        }
    }
    if !open.is_empty() {
        let last_line = 1 + src.bytes().filter(|&b| b == b'\n').count();
        return Err((last_line, err_at(last_line, "unexpected EOF")));
    }
    Ok(())
}

struct Checker<'a> {
    src: &'a str,
    scopes: Vec<Vec<String>>,
    ranges: usize,
}

impl Checker<'_> {
    fn line(&self, pos: Pos) -> usize {
        line_of(self.src, pos)
    }

    fn list(&mut self, list: &ListNode) -> Result<(), String> {
        for node in &list.nodes {
            self.node(node)?;
        }
        Ok(())
    }

    fn node(&mut self, node: &Node) -> Result<(), String> {
        match node {
            Node::List(l) => self.list(l),
            Node::Text(_) | Node::Define(_) => Ok(()),
            Node::Action(a) => self.pipe(&a.pipe),
            Node::If(b) | Node::With(b) => self.branch(b, false),
            Node::Range(b) => self.branch(b, true),
            Node::Template(t) => match &t.pipe {
                Some(p) => self.pipe(p),
                None => Ok(()),
            },
            Node::Break(pos) | Node::Continue(pos) if self.ranges == 0 => {
                let word = if matches!(node, Node::Break(_)) {
                    "break"
                } else {
                    "continue"
                };
                Err(err_at(
                    self.line(*pos),
                    &format!("{{{{{word}}}}} outside {{{{range}}}}"),
                ))
            }
            Node::Break(_) | Node::Continue(_) => Ok(()),
        }
    }

    fn branch(&mut self, b: &BranchNode, is_range: bool) -> Result<(), String> {
        self.scopes.push(Vec::new());
        self.pipe(&b.pipe)?;
        if is_range {
            self.ranges += 1;
        }
        let body = self.list(&b.body);
        if is_range {
            self.ranges -= 1;
        }
        body?;
        if let Some(e) = &b.else_body {
            self.list(e)?;
        }
        self.scopes.pop();
        Ok(())
    }

    fn pipe(&mut self, p: &PipeNode) -> Result<(), String> {
        for (i, cmd) in p.commands.iter().enumerate() {
            if i > 0
                && matches!(
                    cmd.args.first(),
                    Some(
                        Expr::Bool(..)
                            | Expr::Dot(_)
                            | Expr::Nil(_)
                            | Expr::Number(..)
                            | Expr::String(..)
                    )
                )
            {
                return Err(err_at(
                    self.line(cmd.pos),
                    &format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
            self.command(cmd)?;
        }
        for name in &p.decl {
            if p.is_assign {
                self.need_var(name, p.pos)?;
            } else if let Some(scope) = self.scopes.last_mut() {
                scope.push(name.to_string());
            }
        }
        Ok(())
    }

    fn command(&mut self, cmd: &CommandNode) -> Result<(), String> {
        for arg in &cmd.args {
            self.expr(arg)?;
        }
        Ok(())
    }

    fn expr(&mut self, e: &Expr) -> Result<(), String> {
        match e {
            Expr::Variable(pos, name, _) => self.need_var(name, *pos),
            Expr::Identifier(pos, name) => {
                if funcs::is_defined(name) {
                    Ok(())
                } else {
                    Err(err_at(
                        self.line(*pos),
                        &format!("function {name:?} not defined"),
                    ))
                }
            }
            Expr::Pipe(_, p) => self.pipe(p),
            Expr::Chain(_, inner, _) => self.expr(inner),
            _ => Ok(()),
        }
    }

    fn need_var(&self, name: &str, pos: Pos) -> Result<(), String> {
        if self.scopes.iter().any(|s| s.iter().any(|v| v == name)) {
            Ok(())
        } else {
            Err(err_at(
                self.line(pos),
                &format!("undefined variable {name:?}"),
            ))
        }
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(src: &str, pos: Pos) -> usize {
    let end = pos.offset.min(src.len());
    1 + src.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Go's `ErrorContext` column: the byte offset within the line, from 0.
pub(crate) fn col_of(src: &str, pos: Pos) -> usize {
    let end = pos.offset.min(src.len());
    match src.as_bytes()[..end].iter().rposition(|&b| b == b'\n') {
        Some(nl) => end - nl - 1,
        None => end,
    }
}

/// Go's `String()` of a parse node, for `executing "…" at <…>`.
pub(crate) fn expr_string(e: &Expr) -> String {
    match e {
        Expr::Dot(_) => ".".into(),
        Expr::Field(_, f) => f.iter().map(|s| format!(".{s}")).collect(),
        Expr::Variable(_, name, f) => {
            let mut s = name.to_string();
            for x in f {
                s.push('.');
                s.push_str(x);
            }
            s
        }
        Expr::Identifier(_, n) => n.to_string(),
        Expr::String(_, s) => crate::gofmt::go_quote(s),
        Expr::Number(_, n) => match n {
            gotmpl::parse::Number::Int(i) => i.to_string(),
            gotmpl::parse::Number::Uint(u) => u.to_string(),
            gotmpl::parse::Number::Float(f) => crate::value::format_float_g(*f, None),
        },
        Expr::Bool(_, b) => b.to_string(),
        Expr::Nil(_) => "nil".into(),
        Expr::Pipe(_, p) => format!("({})", pipe_string(p)),
        Expr::Chain(_, inner, f) => {
            let mut s = expr_string(inner);
            for x in f {
                s.push('.');
                s.push_str(x);
            }
            s
        }
    }
}

pub(crate) fn command_string(c: &CommandNode) -> String {
    c.args.iter().map(expr_string).collect::<Vec<_>>().join(" ")
}

pub(crate) fn pipe_string(p: &PipeNode) -> String {
    let mut s = String::new();
    if !p.decl.is_empty() {
        s.push_str(&p.decl.join(", "));
        s.push_str(if p.is_assign { " = " } else { " := " });
    }
    s.push_str(
        &p.commands
            .iter()
            .map(command_string)
            .collect::<Vec<_>>()
            .join(" | "),
    );
    s
}
