//! The executor: Go's `text/template` `exec.go` semantics over gotmpl's tree
//! and our Go-shaped values.

use gotmpl::parse::{
    BranchNode, CommandNode, Expr, ListNode, Node, Number, PipeNode, Pos, TemplateNode,
};

use crate::funcs::{self, FnError};
use crate::gofmt;
use crate::program::{self, NAME, Program};
use crate::value::{MemberKind, Value, format_v};

/// Range iterations allowed in one rendering, and the longest message: a
/// template in a Git repository must not be able to spin or fill memory.
const MAX_ITERATIONS: u64 = 10_000_000;
const MAX_OUTPUT: usize = 16 << 20;

/// Nested `{{template}}` calls allowed. Go allows 100000; each level costs
/// native stack here, so this stays far below what a thread's stack holds.
const MAX_DEPTH: usize = 200;

enum Flow {
    Err(String),
    Break,
    Continue,
}

type R<T> = Result<T, Flow>;

pub(crate) fn execute(prog: &Program, data: &Value) -> Result<String, String> {
    let mut ex = Exec {
        prog,
        vars: vec![("$".into(), data.clone())],
        out: String::new(),
        depth: 0,
        iterations: 0,
        name: NAME.into(),
    };
    match ex.walk(&prog.tree, data) {
        Ok(()) => Ok(ex.out),
        Err(Flow::Err(e)) => Err(e),
        // The checker refuses break and continue outside range.
        Err(Flow::Break | Flow::Continue) => Ok(ex.out),
    }
}

struct Exec<'a> {
    prog: &'a Program,
    vars: Vec<(String, Value)>,
    out: String,
    depth: usize,
    iterations: u64,
    /// The template being executed, for `executing "…"` in errors.
    name: String,
}

impl Exec<'_> {
    /// Go's `state.errorf`: location, template name and the node's text.
    fn fail(&self, pos: Pos, context: &str, msg: &str) -> Flow {
        let src = &self.prog.src;
        Flow::Err(format!(
            "template: {NAME}:{}:{}: executing {} at <{}>: {}",
            program::line_of(src, pos),
            program::col_of(src, pos),
            gofmt::go_quote(&self.name),
            context,
            msg
        ))
    }

    fn walk(&mut self, list: &ListNode, dot: &Value) -> R<()> {
        for node in &list.nodes {
            self.node(node, dot)?;
        }
        Ok(())
    }

    fn node(&mut self, node: &Node, dot: &Value) -> R<()> {
        if self.out.len() > MAX_OUTPUT {
            return Err(Flow::Err(format!(
                "template: {NAME}: executing {}: message longer than {} MiB",
                gofmt::go_quote(&self.name),
                MAX_OUTPUT >> 20
            )));
        }
        match node {
            Node::Text(t) => {
                self.out.push_str(&t.text);
                Ok(())
            }
            Node::Action(a) => {
                let val = self.pipeline(dot, &a.pipe)?;
                if a.pipe.decl.is_empty() {
                    match &val {
                        Value::Invalid => self.out.push_str("<no value>"),
                        v => self.out.push_str(&format_v(v, false)),
                    }
                }
                Ok(())
            }
            Node::If(b) => self.if_with(b, dot, false),
            Node::With(b) => self.if_with(b, dot, true),
            Node::Range(b) => self.range(b, dot),
            Node::Template(t) => self.template(t, dot),
            Node::List(l) => self.walk(l, dot),
            Node::Define(_) => Ok(()),
            Node::Break(_) => Err(Flow::Break),
            Node::Continue(_) => Err(Flow::Continue),
        }
    }

    fn if_with(&mut self, b: &BranchNode, dot: &Value, with: bool) -> R<()> {
        let mark = self.vars.len();
        let result = (|| {
            let val = self.pipeline(dot, &b.pipe)?;
            if val.truth() {
                let new_dot = if with { val } else { dot.clone() };
                self.walk(&b.body, &new_dot)
            } else if let Some(e) = &b.else_body {
                self.walk(e, dot)
            } else {
                Ok(())
            }
        })();
        self.vars.truncate(mark);
        result
    }

    fn range(&mut self, b: &BranchNode, dot: &Value) -> R<()> {
        let mark = self.vars.len();
        let val = self.pipeline_value(dot, &b.pipe)?;
        // Lazy, so `range 1000000000` costs iterations, not memory.
        let items: Box<dyn Iterator<Item = (Value, Value)>> = match &val {
            Value::List(l) => {
                let l = l.clone();
                Box::new(
                    (0..l.items.len()).map(move |i| (Value::Int(i as i64), l.items[i].clone())),
                )
            }
            Value::Map(m) => {
                let m = m.clone();
                Box::new((0..m.entries.len()).map(move |i| m.entries[i].clone()))
            }
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.fail(
                        b.pos,
                        &program::pipe_string(&b.pipe),
                        &format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                Box::new((0..*n).map(|i| (Value::Int(i), Value::Int(i))))
            }
            Value::Invalid | Value::Nil => Box::new(std::iter::empty()),
            other => {
                return Err(self.fail(
                    b.pos,
                    &program::pipe_string(&b.pipe),
                    &format!("range can't iterate over {}", format_v(other, false)),
                ));
            }
        };
        let mut items = items.peekable();
        if items.peek().is_none() {
            let r = match &b.else_body {
                Some(e) => self.walk(e, dot),
                None => Ok(()),
            };
            self.vars.truncate(mark);
            return r;
        }
        for (index, elem) in items {
            self.iterations += 1;
            if self.iterations > MAX_ITERATIONS {
                return Err(self.fail(
                    b.pos,
                    &program::pipe_string(&b.pipe),
                    &format!("more than {MAX_ITERATIONS} range iterations"),
                ));
            }
            // One variable takes the element; two take index then element.
            let bindings: Vec<Value> = match b.pipe.decl.len() {
                0 => vec![],
                1 => vec![elem.clone()],
                _ => vec![index, elem.clone()],
            };
            for (name, v) in b.pipe.decl.iter().zip(bindings) {
                if b.pipe.is_assign {
                    self.assign(name, v);
                } else {
                    self.vars.push((name.to_string(), v));
                }
            }
            let r = self.walk(&b.body, &elem);
            self.vars.truncate(mark);
            match r {
                Ok(()) | Err(Flow::Continue) => {}
                Err(Flow::Break) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn template(&mut self, t: &TemplateNode, dot: &Value) -> R<()> {
        let tree = if let Some(tree) = self.prog.defines.get(t.name.as_str()) {
            tree.clone()
        } else if t.name == NAME {
            self.prog.tree.clone()
        } else {
            return Err(self.fail(
                t.pos,
                &format!("{{{{template {}}}}}", gofmt::go_quote(&t.name)),
                &format!("template {} not defined", gofmt::go_quote(&t.name)),
            ));
        };
        if self.depth >= MAX_DEPTH {
            return Err(self.fail(
                t.pos,
                &format!("{{{{template {}}}}}", gofmt::go_quote(&t.name)),
                &format!("exceeded maximum template depth ({MAX_DEPTH})"),
            ));
        }
        let new_dot = match &t.pipe {
            Some(p) => self.pipeline(dot, p)?,
            None => Value::Invalid,
        };
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
        let saved_name = std::mem::replace(&mut self.name, t.name.to_string());
        self.depth += 1;
        let r = self.walk(&tree, &new_dot);
        self.depth -= 1;
        self.vars = saved_vars;
        self.name = saved_name;
        r
    }

    fn assign(&mut self, name: &str, v: Value) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
        }
    }

    fn var(&self, name: &str, pos: Pos) -> R<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.fail(pos, name, &format!("undefined variable: {name}")))
    }

    /// A pipeline with its declarations bound.
    fn pipeline(&mut self, dot: &Value, p: &PipeNode) -> R<Value> {
        let val = self.pipeline_value(dot, p)?;
        for name in &p.decl {
            if p.is_assign {
                self.assign(name, val.clone());
            } else {
                self.vars.push((name.to_string(), val.clone()));
            }
        }
        Ok(val)
    }

    fn pipeline_value(&mut self, dot: &Value, p: &PipeNode) -> R<Value> {
        let mut val: Option<Value> = None;
        for cmd in &p.commands {
            val = Some(self.command(dot, cmd, val)?);
        }
        Ok(val.unwrap_or(Value::Invalid))
    }

    fn command(&mut self, dot: &Value, cmd: &CommandNode, fin: Option<Value>) -> R<Value> {
        let Some(first) = cmd.args.first() else {
            return Ok(Value::Invalid);
        };
        let has_args = cmd.args.len() > 1 || fin.is_some();
        match first {
            Expr::Identifier(_, name) => self.call(dot, name, &cmd.args[1..], fin, cmd),
            Expr::Chain(pos, inner, fields) => {
                let recv = if let Expr::Identifier(_, name) = inner.as_ref() {
                    let v = self.call(dot, name, &cmd.args[1..], fin, cmd)?;
                    return self.fields(v, fields, false, *pos, first);
                } else {
                    if matches!(inner.as_ref(), Expr::Nil(_)) {
                        return Err(self.fail(
                            *pos,
                            &program::expr_string(first),
                            &format!(
                                "indirection through explicit nil in {}",
                                program::expr_string(first)
                            ),
                        ));
                    }
                    self.arg(dot, inner)?
                };
                self.fields(recv, fields, has_args, *pos, first)
            }
            Expr::Field(pos, fields) => self.fields(dot.clone(), fields, has_args, *pos, first),
            Expr::Variable(pos, name, fields) => {
                let v = self.var(name, *pos)?;
                if fields.is_empty() {
                    self.not_a_function(cmd, has_args)?;
                    Ok(v)
                } else {
                    self.fields(v, fields, has_args, *pos, first)
                }
            }
            Expr::Pipe(_, p) => {
                self.not_a_function(cmd, has_args)?;
                self.pipeline(dot, p)
            }
            Expr::Nil(pos) => Err(self.fail(*pos, "nil", "nil is not a command")),
            _ => {
                self.not_a_function(cmd, has_args)?;
                self.arg(dot, first)
            }
        }
    }

    fn not_a_function(&self, cmd: &CommandNode, has_args: bool) -> R<()> {
        if has_args {
            let first = &cmd.args[0];
            return Err(self.fail(
                first.pos(),
                &program::command_string(cmd),
                &format!(
                    "can't give argument to non-function {}",
                    program::expr_string(first)
                ),
            ));
        }
        Ok(())
    }

    /// Evaluates an argument of a function (or the receiver of a chain).
    fn arg(&mut self, dot: &Value, e: &Expr) -> R<Value> {
        Ok(match e {
            Expr::Dot(_) => dot.clone(),
            Expr::Nil(_) => Value::Nil,
            Expr::Bool(_, b) => Value::Bool(*b),
            Expr::String(_, s) => Value::Str(s.clone()),
            Expr::Number(pos, n) => match n {
                Number::Int(i) => Value::Int(*i),
                Number::Float(f) => Value::Float(*f),
                Number::Uint(u) => {
                    return Err(self.fail(*pos, &u.to_string(), &format!("{u} overflows int")));
                }
            },
            Expr::Field(pos, fields) => self.fields(dot.clone(), fields, false, *pos, e)?,
            Expr::Variable(pos, name, fields) => {
                let v = self.var(name, *pos)?;
                self.fields(v, fields, false, *pos, e)?
            }
            Expr::Pipe(_, p) => self.pipeline(dot, p)?,
            Expr::Identifier(pos, name) => {
                let cmd = CommandNode {
                    pos: *pos,
                    args: vec![e.clone()],
                };
                self.call(dot, name, &[], None, &cmd)?
            }
            Expr::Chain(pos, inner, fields) => {
                let recv = if let Expr::Identifier(ipos, name) = inner.as_ref() {
                    let cmd = CommandNode {
                        pos: *ipos,
                        args: vec![inner.as_ref().clone()],
                    };
                    self.call(dot, name, &[], None, &cmd)?
                } else {
                    self.arg(dot, inner)?
                };
                self.fields(recv, fields, false, *pos, e)?
            }
        })
    }

    /// Go's `evalFieldChain`: only the last field may receive arguments.
    fn fields(
        &self,
        mut v: Value,
        fields: &[gotmpl::parse::SmolStr],
        has_args: bool,
        pos: Pos,
        e: &Expr,
    ) -> R<Value> {
        for (i, name) in fields.iter().enumerate() {
            let last = i + 1 == fields.len();
            v = self.field(&v, name, has_args && last, pos, e)?;
        }
        Ok(v)
    }

    fn field(&self, recv: &Value, name: &str, has_args: bool, pos: Pos, e: &Expr) -> R<Value> {
        let fail = |msg: String| self.fail(pos, &program::expr_string(e), &msg);
        match recv {
            // A missing map entry stays missing all the way down the chain.
            Value::Invalid => Ok(Value::Invalid),
            Value::Nil => Err(fail(format!(
                "nil pointer evaluating interface {{}}.{name}"
            ))),
            Value::Struct(s) => {
                let kind = s
                    .members
                    .iter()
                    .find(|m| m.name == name)
                    .map(|m| m.kind)
                    .unwrap_or(MemberKind::Field);
                match recv.member(name) {
                    Some(_) if has_args && kind == MemberKind::Method => Err(fail(format!(
                        "wrong number of args for {name}: want 0 got 1"
                    ))),
                    Some(_) if has_args => Err(fail(format!(
                        "{name} has arguments but cannot be invoked as function"
                    ))),
                    Some(v) => Ok(v.clone()),
                    None => Err(fail(format!(
                        "can't evaluate field {name} in type {}",
                        s.ty
                    ))),
                }
            }
            Value::Map(m) if m.string_keys => {
                if has_args {
                    return Err(fail(format!("{name} is not a method but has arguments")));
                }
                Ok(m.entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Invalid))
            }
            other => Err(fail(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            ))),
        }
    }

    fn call(
        &mut self,
        dot: &Value,
        name: &str,
        arg_exprs: &[Expr],
        fin: Option<Value>,
        cmd: &CommandNode,
    ) -> R<Value> {
        let ctx = program::command_string(cmd);
        // `and` and `or` stop evaluating at the first argument that decides.
        if name == "and" || name == "or" {
            let total = arg_exprs.len() + usize::from(fin.is_some());
            if total == 0 {
                return Err(self.fail(
                    cmd.pos,
                    &ctx,
                    &format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let want = name == "and";
            let mut last = Value::Invalid;
            for e in arg_exprs {
                let v = self.arg(dot, e)?;
                if v.truth() != want {
                    return Ok(v);
                }
                last = v;
            }
            if let Some(v) = fin {
                return Ok(v);
            }
            return Ok(last);
        }
        let mut args = Vec::with_capacity(arg_exprs.len() + 1);
        for e in arg_exprs {
            args.push(self.arg(dot, e)?);
        }
        if let Some(v) = fin {
            args.push(v);
        }
        funcs::call(name, &args).map_err(|err| match err {
            FnError::Go(msg) => self.fail(cmd.pos, &ctx, &msg),
            FnError::Call(msg) => self.fail(cmd.pos, &ctx, &format!("error calling {name}: {msg}")),
        })
    }
}
