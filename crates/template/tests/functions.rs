//! Go's builtins and the hermetic sprig helpers, with sprig's argument order
//! (the string being worked on comes last, so it can be piped in).

mod common;

use common::podinfo;
use tagwarden_template::render;

fn run(template: &str) -> String {
    match render(Some(template), &podinfo()) {
        Ok(out) => out,
        Err(e) => format!("ERROR: {e}"),
    }
}

fn table(cases: &[(&str, &str)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(t, want)| {
            let got = run(t);
            (got != *want).then(|| format!("{t}\n  want {want:?}\n  got  {got:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sprig_string_helpers() {
    table(&[
        (r#"{{ upper "podInfo" }}"#, "PODINFO"),
        (r#"{{ lower "PodInfo" }}"#, "podinfo"),
        (r#"{{ title "image update-bot" }}"#, "Image Update-Bot"),
        (r#"{{ trim "  5.0.3 \n" }}"#, "5.0.3"),
        (r#"{{ trimAll "-" "--v1--" }}"#, "v1"),
        (r#"{{ trimPrefix "v" "v1.2.3" }}"#, "1.2.3"),
        (r#"{{ "v1.2.3" | trimPrefix "v" }}"#, "1.2.3"),
        (r#"{{ trimSuffix "-rc" "1.0-rc" }}"#, "1.0"),
        (r#"{{ replace "." "-" "1.2.3" }}"#, "1-2-3"),
        (r#"{{ "ghcr.io/a/b" | replace "/" "_" }}"#, "ghcr.io_a_b"),
        (r#"{{ repeat 3 "ab" }}"#, "ababab"),
        (r#"{{ nospace " a b\tc\n" }}"#, "abc"),
        (r#"{{ trunc 5 "abcdefgh" }}"#, "abcde"),
        (r#"{{ trunc -3 "abcdefgh" }}"#, "fgh"),
        (r#"{{ trunc 20 "abc" }}"#, "abc"),
        (r#"{{ abbrev 5 "hello world" }}"#, "he..."),
        (r#"{{ abbrev 3 "hello world" }}"#, "hello world"),
        (r#"{{ substr 1 3 "abcdef" }}"#, "bc"),
        (r#"{{ substr 2 -1 "abcdef" }}"#, "cdef"),
        (r#"{{ contains "5.0" "5.0.3" }}"#, "true"),
        (r#"{{ "5.0.3" | contains "6.0" }}"#, "false"),
        (r#"{{ hasPrefix "v" "v1" }}"#, "true"),
        (r#"{{ hasSuffix "-rc" "1.0" }}"#, "false"),
        (r#"{{ indent 2 "a\nb" }}"#, "  a\n  b"),
        (r#"{{ nindent 2 "a" }}"#, "\n  a"),
        (r#"{{ quote "a" "b\"c" }}"#, r#""a" "b\"c""#),
        (r#"{{ squote "a" 1 }}"#, "'a' '1'"),
        (
            r#"{{ cat "a" 1 .AutomationObject }}"#,
            "a 1 flux-system/flux-system",
        ),
        (
            r#"{{ plural "image" "images" 1 }} {{ plural "image" "images" 2 }}"#,
            "image images",
        ),
        (
            r#"{{ sha256sum "hello" }}"#,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        ),
        (
            r#"{{ b64enc "hello" }}|{{ b64dec "aGVsbG8=" }}"#,
            "aGVsbG8=|hello",
        ),
        (
            r#"{{ toString 5 }}|{{ toString .AutomationObject }}"#,
            "5|flux-system/flux-system",
        ),
    ]);
}

#[test]
fn sprig_lists_splits_and_joins() {
    table(&[
        (r#"{{ join ", " (list "a" "b" "c") }}"#, "a, b, c"),
        (r#"{{ list "a" 1 | join "-" }}"#, "a-1"),
        (
            r#"{{ split "/" "ghcr.io/org/app" }}"#,
            "map[_0:ghcr.io _1:org _2:app]",
        ),
        (r#"{{ (split "/" "ghcr.io/org/app")._2 }}"#, "app"),
        (r#"{{ splitList ":" "app:v1" }}"#, "[app v1]"),
        (r#"{{ last (splitList ":" "app:v1") }}"#, "v1"),
        (r#"{{ first (list "x" "y") }}"#, "x"),
        (
            r#"{{ rest (list 1 2 3) }}|{{ initial (list 1 2 3) }}"#,
            "[2 3]|[1 2]",
        ),
        (r#"{{ uniq (list "a" "b" "a") }}"#, "[a b]"),
        (r#"{{ has "b" (list "a" "b") }}"#, "true"),
        (r#"{{ without (list "a" "b" "c") "b" }}"#, "[a c]"),
        (r#"{{ compact (list "a" "" "b") }}"#, "[a b]"),
        (r#"{{ sortAlpha (list "b" "C" "a") }}"#, "[C a b]"),
        (r#"{{ until 3 }}"#, "[0 1 2]"),
        (
            r#"{{ $d := dict "b" 2 "a" 1 }}{{ $d }} {{ get $d "a" }} {{ hasKey $d "c" }} {{ keys $d }}"#,
            "map[a:1 b:2] 1 false [a b]",
        ),
        (
            r#"{{ join "," .Changed.Changes }}"#,
            "{ghcr.io/stefanprodan/podinfo:5.0.0 ghcr.io/stefanprodan/podinfo:5.0.3 flux-system:podinfo}",
        ),
        (r#"{{ toStrings (list 1 2) }}"#, "[1 2]"),
    ]);
}

#[test]
fn sprig_defaults_and_numbers() {
    table(&[
        (r#"{{ default "dev" "" }}"#, "dev"),
        (r#"{{ default "dev" "prod" }}"#, "prod"),
        (r#"{{ .Values.env | default "dev" }}"#, "dev"),
        (
            r#"{{ empty "" }} {{ empty .AutomationObject }} {{ empty .Changed.Changes }}"#,
            "true false false",
        ),
        (r#"{{ coalesce "" .Values.x "z" }}"#, "z"),
        (
            r#"{{ ternary "yes" "no" true }} {{ ternary "yes" "no" false }}"#,
            "yes no",
        ),
        (
            r#"{{ add 1 2 3 }} {{ add1 4 }} {{ sub 5 7 }} {{ mul 2 3 4 }}"#,
            "6 5 -2 24",
        ),
        (
            r#"{{ div 7 2 }} {{ mod 7 2 }} {{ max 1 9 3 }} {{ min 4 2 8 }}"#,
            "3 1 9 2",
        ),
        (
            r#"{{ atoi "42" }} {{ atoi "x" }} {{ int "0x10" }} {{ int64 "12" }}"#,
            "42 0 16 12",
        ),
        (
            r#"{{ regexMatch "^v[0-9]+" "v12" }} {{ regexFind "[0-9]+" "app-42-x" }}"#,
            "true 42",
        ),
        (
            r#"{{ regexReplaceAll "([0-9]+)" "v1.22" "<$1>" }}"#,
            "v<1>.<22>",
        ),
        (r#"{{ regexReplaceAllLiteral "[0-9]+" "v1" "$0" }}"#, "v$0"),
        (
            r#"{{ regexFindAll "[0-9]" "a1b2c3" 2 }} {{ regexSplit "-" "a-b-c" -1 }}"#,
            "[1 2] [a b c]",
        ),
    ]);
}

#[test]
fn go_builtins() {
    table(&[
        (r#"{{ printf "%s@%d" "app" 3 }}"#, "app@3"),
        (
            r#"{{ printf "%v" .AutomationObject }}|{{ printf "%q" .AutomationObject }}"#,
            "flux-system/flux-system|\"flux-system/flux-system\"",
        ),
        (r#"{{ print "a" "b" 1 2 }}"#, "ab1 2"),
        (r#"{{ println "a" 1 }}"#, "a 1\n"),
        (
            r#"{{ len .Changed.Changes }} {{ len "héllo" }} {{ len .Values }}"#,
            "1 6 0",
        ),
        (
            r#"{{ (index .Changed.Changes 0).Setter }}"#,
            "flux-system:podinfo",
        ),
        (r#"{{ index .Changed.FileChanges "nope" }}"#, "map[]"),
        (r#"{{ index .Values "nope" }}|"#, "|"),
        (
            r#"{{ slice "abcdef" 1 3 }} {{ slice (list 1 2 3) 1 }}"#,
            "bc [2 3]",
        ),
        (
            r#"{{ eq 1 1 }} {{ eq "a" "b" "a" }} {{ ne 1 2 }} {{ eq .Values.x "a" }}"#,
            "true true true false",
        ),
        (
            r#"{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1 2 }}"#,
            "true true true false",
        ),
        (
            r#"{{ not true }} {{ and 1 0 }} {{ or 0 "x" }} {{ and 1 "y" }}"#,
            "false 0 x y",
        ),
        (
            r#"{{ if and .Values.x (fail "never evaluated") }}yes{{ else }}no{{ end }}"#,
            "no",
        ),
        (r#"{{ html "<a href='x'>" }}"#, "&lt;a href=&#39;x&#39;&gt;"),
        (r#"{{ urlquery "a b&c" }}"#, "a+b%26c"),
    ]);
}

#[test]
fn only_hermetic_functions_exist() {
    // Flux registers sprig's hermetic map: nothing that reads the clock, the
    // environment or a random source.
    for name in [
        "now",
        "date",
        "env",
        "expandenv",
        "randAlpha",
        "uuidv4",
        "genPrivateKey",
    ] {
        let got = run(&format!("{{{{ {name} }}}}"));
        assert_eq!(
            got,
            format!(
                "ERROR: unable to create commit message template from spec: template: commit message:1: function \"{name}\" not defined"
            )
        );
    }
}
