//! The language of `pos` and `demo` output: `--lang` when given, else the locale.
//!
//! The locale rule is the catalog's (`Lang::from_env`): the first of `LC_ALL`,
//! `LC_MESSAGES` and `LANG` that is set and not empty decides; `zh…` means Chinese, anything
//! else (and no locale at all) English. Every text of one run is then in that language; texts that come from the
//! catalog are taken in it (`poskit_codes`), the rest pass through [`tr`].

use poskit_codes::Lang;

use crate::fail::usage;

/// `--lang` if given (zh or en; anything else is a usage error), else the locale's
/// ([`Lang::from_env`], the one rule `explain` follows too).
pub fn chosen(arg: Option<&str>) -> anyhow::Result<Lang> {
    match arg {
        Some(text) => text.parse().map_err(|e| usage(format!("--lang: {e}"))),
        None => Ok(Lang::from_env()),
    }
}

/// One of a text's two forms.
pub fn tr(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_lang_wins_and_a_bad_one_is_a_usage_error() {
        assert_eq!(chosen(Some("zh")).unwrap(), Lang::Zh);
        assert_eq!(chosen(Some("en")).unwrap(), Lang::En);
        assert!(chosen(Some("fr")).is_err());
    }
}
