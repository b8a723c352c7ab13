//! A bad template stalls the automation with Go's error text behind Flux's
//! prefix; parse errors carry a line, execution errors a line and column.

mod common;

use common::podinfo;
use tagwarden_template::{TemplateError, check, render};

fn parse_err(template: &str) -> String {
    match check(template) {
        Err(TemplateError::Parse(e)) => e,
        other => panic!("{template:?}: expected a parse error, got {other:?}"),
    }
}

fn exec_err(template: &str) -> String {
    assert_eq!(check(template), Ok(()), "{template:?} should parse");
    match render(Some(template), &podinfo()) {
        Err(TemplateError::Execute(e)) => e,
        other => panic!("{template:?}: expected an execution error, got {other:?}"),
    }
}

#[test]
fn parse_errors_read_like_go() {
    let cases = [
        (
            "{{ if .X }}open",
            "template: commit message:1: unexpected EOF",
        ),
        (
            "a\n{{ range .Changed.Changes }}\n",
            "template: commit message:3: unexpected EOF",
        ),
        (
            "done{{ end }}",
            "template: commit message:1: unexpected {{end}}",
        ),
        (
            "{{ else }}",
            "template: commit message:1: unexpected {{else}}",
        ),
        (
            "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
            "template: commit message:1: expected end; found {{else}}",
        ),
        (
            "x\n\n{{ nosuch .X }}",
            "template: commit message:3: function \"nosuch\" not defined",
        ),
        (
            "{{ $x }}",
            "template: commit message:1: undefined variable \"$x\"",
        ),
        (
            "{{ $x = 1 }}",
            "template: commit message:1: undefined variable \"$x\"",
        ),
        (
            "{{ .X | \"s\" }}",
            "template: commit message:1: non executable command in pipeline stage 2",
        ),
        (
            "{{ break }}",
            "template: commit message:1: {{break}} outside {{range}}",
        ),
    ];
    for (template, want) in cases {
        assert_eq!(parse_err(template), want, "{template:?}");
    }
}

#[test]
fn gotmpl_syntax_errors_keep_their_line() {
    let e = parse_err("line one\n{{ \"unterminated }}");
    assert!(e.starts_with("template: commit message:2: "), "{e}");
    // An escape before a multi-byte character must not trip the block scan.
    let e = parse_err("{{ \"\\é }}");
    assert!(e.starts_with("template: commit message:1: "), "{e}");
}

#[test]
fn valid_templates_pass_check() {
    for template in [
        "plain text",
        "{{ if .X }}a{{ else if .Y }}b{{ else }}c{{ end }}",
        "{{ with $x := .A }}{{ $x }}{{ else with .B }}{{ . }}{{ end }}",
        "{{ range $i, $c := .Changed.Changes }}{{ if $i }}, {{ end }}{{ $c.NewValue }}{{ break }}{{ end }}",
        "{{ define \"x\" }}{{ . }}{{ end }}{{ template \"x\" .AutomationObject }}",
        "{{/* a comment with {{ braces }} and \"quotes\" */}}ok",
        "{{ \"}}\" }} {{ `{{end}}` }}",
    ] {
        assert_eq!(check(template), Ok(()), "{template:?}");
    }
}

#[test]
fn execution_errors_point_at_the_node() {
    let cases = [
        (
            "{{ .Nope }}",
            "template: commit message:1:3: executing \"commit message\" at <.Nope>: can't evaluate field Nope in type source.TemplateData",
        ),
        (
            "Files:\n  {{ .Changed.Nope }}",
            "template: commit message:2:5: executing \"commit message\" at <.Changed.Nope>: can't evaluate field Nope in type update.Result",
        ),
        (
            "{{ range .Changed.Changes }}{{ .Old }}{{ end }}",
            "template: commit message:1:31: executing \"commit message\" at <.Old>: can't evaluate field Old in type update.Change",
        ),
        (
            "{{ .AutomationObject.Name.Foo }}",
            "template: commit message:1:3: executing \"commit message\" at <.AutomationObject.Name.Foo>: can't evaluate field Foo in type string",
        ),
        (
            "{{ .Changed.Objects.Deployment }}",
            "template: commit message:1:3: executing \"commit message\" at <.Changed.Objects.Deployment>: can't evaluate field Deployment in type update.ObjectChanges",
        ),
        (
            "{{ upper 1 }}",
            "template: commit message:1:3: executing \"commit message\" at <upper 1>: wrong type for value; expected string; got int",
        ),
        (
            "{{ upper .Values.nope }}",
            "template: commit message:1:3: executing \"commit message\" at <upper .Values.nope>: invalid value; expected string",
        ),
        (
            "{{ upper }}",
            "template: commit message:1:3: executing \"commit message\" at <upper>: wrong number of args for upper: want 1 got 0",
        ),
        (
            "{{ index .Changed.Changes 5 }}",
            "template: commit message:1:3: executing \"commit message\" at <index .Changed.Changes 5>: error calling index: index out of range: 5",
        ),
        (
            "{{ fail \"no release today\" }}",
            "template: commit message:1:3: executing \"commit message\" at <fail \"no release today\">: error calling fail: no release today",
        ),
        (
            "{{ eq 1 \"1\" }}",
            "template: commit message:1:3: executing \"commit message\" at <eq 1 \"1\">: error calling eq: incompatible types for comparison",
        ),
        (
            "{{ template \"missing\" }}",
            "template: commit message:1:3: executing \"commit message\" at <{{template \"missing\"}}>: template \"missing\" not defined",
        ),
        (
            "{{ define \"t\" }}{{ .Bad }}{{ end }}{{ template \"t\" .Changed }}",
            "template: commit message:1:19: executing \"t\" at <.Bad>: can't evaluate field Bad in type update.Result",
        ),
        (
            "{{ range .AutomationObject }}{{ end }}",
            "template: commit message:1:3: executing \"commit message\" at <.AutomationObject>: range can't iterate over flux-system/flux-system",
        ),
        (
            "{{ .AutomationObject 1 }}",
            "template: commit message:1:3: executing \"commit message\" at <.AutomationObject>: AutomationObject has arguments but cannot be invoked as function",
        ),
        (
            "{{ nil }}",
            "template: commit message:1:3: executing \"commit message\" at <nil>: nil is not a command",
        ),
    ];
    for (template, want) in cases {
        assert_eq!(exec_err(template), want, "{template:?}");
    }
}

#[test]
fn errors_carry_flux_prefixes_for_the_stalled_condition() {
    let parse = render(Some("{{ if }}"), &podinfo()).expect_err("bad syntax");
    assert!(
        parse.to_string().starts_with(
            "unable to create commit message template from spec: template: commit message:1: "
        ),
        "{parse}"
    );
    let exec = render(Some("{{ .Nope }}"), &podinfo()).expect_err("bad field");
    assert_eq!(
        exec.to_string(),
        format!("failed to run template from spec: {}", exec.go_error())
    );
}

#[test]
fn runaway_recursion_is_an_error_not_a_crash() {
    let e = exec_err(
        "{{ define \"loop\" }}{{ template \"loop\" . }}{{ end }}{{ template \"loop\" . }}",
    );
    assert!(e.ends_with("exceeded maximum template depth (200)"), "{e}");
}

#[test]
fn a_template_cannot_exhaust_the_controller() {
    let e = exec_err("{{ range 100000000000 }}{{ end }}");
    assert!(e.ends_with("more than 10000000 range iterations"), "{e}");
    let e = exec_err("{{ repeat 100000000000 \"x\" }}");
    assert!(
        e.ends_with("error calling repeat: repeat: result too large (100000000000)"),
        "{e}"
    );
    let e = exec_err("{{ range 100000 }}{{ repeat 1000 \"x\" }}{{ end }}");
    assert!(e.ends_with("message longer than 16 MiB"), "{e}");
}
