//! The language of `pos` and `demo` output: `--lang` when given, else the locale.
//!
//! The locale rule (issue 25): the first of `LC_ALL`, `LC_MESSAGES` and `LANG` that is set
//! and not empty decides; `zh…` means Chinese, anything else (and no locale at all)
//! English. Every text of one run is then in that language; texts that come from the
//! catalog are taken in it (`poskit_codes`), the rest pass through [`tr`].

use poskit_codes::Lang;

use crate::fail::usage;

/// `--lang` if given (zh or en; anything else is a usage error), else the locale's.
pub fn chosen(arg: Option<&str>) -> anyhow::Result<Lang> {
    match arg {
        Some(text) => text.parse().map_err(|e| usage(format!("--lang: {e}"))),
        None => {
            let var = |name: &str| std::env::var(name).ok();
            Ok(of_locale(
                var("LC_ALL").as_deref(),
                var("LC_MESSAGES").as_deref(),
                var("LANG").as_deref(),
            ))
        }
    }
}

/// The rule over explicit values (POSIX order: `LC_ALL`, `LC_MESSAGES`, `LANG`).
pub fn of_locale(lc_all: Option<&str>, lc_messages: Option<&str>, lang: Option<&str>) -> Lang {
    let chosen = [lc_all, lc_messages, lang]
        .into_iter()
        .flatten()
        .find(|value| !value.is_empty());
    match chosen {
        Some(value) if value.to_ascii_lowercase().starts_with("zh") => Lang::Zh,
        _ => Lang::En,
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
    fn a_chinese_locale_gives_chinese_and_anything_else_english() {
        assert_eq!(of_locale(None, None, Some("zh_CN.UTF-8")), Lang::Zh);
        assert_eq!(of_locale(None, None, Some("en_US.UTF-8")), Lang::En);
        assert_eq!(of_locale(None, None, Some("C.UTF-8")), Lang::En);
        assert_eq!(of_locale(None, None, Some("fr_FR")), Lang::En);
        assert_eq!(of_locale(None, None, None), Lang::En);
    }

    #[test]
    fn lc_all_wins_over_lc_messages_over_lang_and_empty_values_are_skipped() {
        assert_eq!(
            of_locale(Some("en_US"), Some("zh_CN"), Some("zh_CN")),
            Lang::En
        );
        assert_eq!(of_locale(Some(""), Some("zh_TW"), Some("en_US")), Lang::Zh);
        assert_eq!(of_locale(None, Some(""), Some("zh_CN")), Lang::Zh);
    }

    #[test]
    fn an_explicit_lang_wins_and_a_bad_one_is_a_usage_error() {
        assert_eq!(chosen(Some("zh")).unwrap(), Lang::Zh);
        assert_eq!(chosen(Some("en")).unwrap(), Lang::En);
        assert!(chosen(Some("fr")).is_err());
    }
}
