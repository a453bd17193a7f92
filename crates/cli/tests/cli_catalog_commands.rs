//! Every poskit command the catalog tells an operator to run exists and takes the options
//! the catalog names: for each `poskit SUB [SUBSUB] --flag ...` in backticks in any text of
//! the catalog, in both languages, `poskit SUB [SUBSUB] --help` succeeds and lists every
//! `--flag`. (The catalog's own tests check that no text names `poskit` outside backticks.)

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use poskit_codes::{Catalog, Lang};

/// Every text of the catalog a person reads, in both languages.
fn catalog_texts() -> Vec<&'static str> {
    let catalog = Catalog::builtin();
    let mut texts: Vec<&str> = Vec::new();
    for entry in catalog.all_entries().iter().chain(catalog.locals()) {
        for lang in Lang::ALL {
            texts.extend(entry.steps(lang).iter().map(String::as_str));
            texts.extend(entry.causes(lang).iter().map(String::as_str));
            texts.extend(entry.conflicts(lang).iter().map(String::as_str));
            texts.push(entry.customer(lang));
            texts.push(entry.meaning(lang));
            for op in poskit_codes::Operation::ALL {
                texts.extend(entry.steps_for(op, lang).iter().map(String::as_str));
            }
        }
    }
    for symptom in catalog.symptoms() {
        for lang in Lang::ALL {
            texts.extend(symptom.steps(lang).iter().map(String::as_str));
            texts.push(symptom.title(lang));
            texts.push(symptom.customer(lang));
        }
    }
    for vendor in catalog.vendors() {
        texts.extend(Lang::ALL.map(|lang| vendor.note(lang)));
    }
    texts
}

/// The commands in backticks that start with `poskit `, as their words.
fn named_commands(text: &str) -> Vec<Vec<String>> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|quoted| quoted.starts_with("poskit "))
        .map(|quoted| quoted.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn help(path: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(path)
        .arg("--help")
        .output()
        .expect("the poskit binary runs");
    let text = String::from_utf8(output.stdout).expect("help is UTF-8");
    (output.status.success(), text)
}

/// Whether `word` is listed as a subcommand in `help` (a line "  word  description").
fn lists_subcommand(help: &str, word: &str) -> bool {
    help.lines().any(|line| {
        line.strip_prefix("  ")
            .and_then(|rest| rest.split_whitespace().next())
            == Some(word)
    })
}

/// `poskit SUB [--opt VALUE]... [SUBSUB] ...` → the command path and the flags it names.
fn command_path_and_flags(words: &[String]) -> (Vec<String>, BTreeSet<String>) {
    assert_eq!(words[0], "poskit");
    let sub = words
        .get(1)
        .expect("a command names its subcommand")
        .clone();
    let flags: BTreeSet<String> = words
        .iter()
        .filter(|word| word.starts_with("--"))
        .cloned()
        .collect();
    let (_, sub_help) = help(&[&sub]);
    // The first bare lowercase word after SUB that SUB lists as a subcommand.
    let subsub = words[2..]
        .iter()
        .filter(|word| !word.starts_with('-'))
        .find(|word| lists_subcommand(&sub_help, word))
        .cloned();
    let mut path = vec![sub];
    path.extend(subsub);
    (path, flags)
}

#[test]
fn every_command_a_catalog_text_names_exists_with_its_options() {
    let mut commands: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for text in catalog_texts() {
        for words in named_commands(text) {
            let (path, flags) = command_path_and_flags(&words);
            commands.entry(path).or_default().extend(flags);
        }
    }
    assert!(
        commands.len() >= 6,
        "the catalog names commands: {commands:?}"
    );
    let mut wrong = Vec::new();
    for (path, flags) in &commands {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let (ok, text) = help(&path);
        if !ok {
            wrong.push(format!("poskit {} does not exist", path.join(" ")));
            continue;
        }
        for flag in flags.iter().filter(|flag| !text.contains(flag.as_str())) {
            wrong.push(format!("poskit {} has no {flag}", path.join(" ")));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_check_refuses_a_command_or_option_that_does_not_exist() {
    let (ok, _) = help(&["teleport"]);
    assert!(!ok, "poskit teleport does not exist");
    let words: Vec<String> = "poskit pos --terminal DIR journal --since"
        .split(' ')
        .map(str::to_owned)
        .collect();
    let (path, flags) = command_path_and_flags(&words);
    assert_eq!(path, ["pos", "journal"]);
    let (ok, text) = help(&["pos", "journal"]);
    assert!(ok);
    assert!(text.contains("--terminal"));
    assert!(flags.contains("--since") && !text.contains("--since"));
}
