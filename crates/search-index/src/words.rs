//! The words free text is matched by, made by this one function for both
//! indexes, so a search finds the same transactions on the embedded default
//! and on Elasticsearch/OpenSearch whatever the script of its text.
//!
//! A text is read in Unicode's compatibility composition (NFKC, Unicode
//! Standard Annex #15: `ﬁ` is `fi`, a letter and a combining accent typed
//! apart are the accented letter, full-width letters are the plain ones),
//! split at every character that is neither a letter nor a digit
//! ([`char::is_alphanumeric`]: spaces, punctuation, symbols, emoji), and each
//! word is lower-cased with Unicode's default case mapping
//! ([`str::to_lowercase`]), the final sigma `ς` read as `σ` so that a word
//! matches whatever its position was, and the dot above that lower-casing
//! leaves on the `i` of a capital `İ` dropped, so that `İstanbul`, `ISTANBUL`
//! and `istanbul` are one word. Accents stay: `café` is not `cafe`.
//!
//! The indexes are given these words joined by spaces and only split them
//! there, folding nothing more: SQLite FTS5's `ascii` tokenizer on the
//! embedded index (every character outside ASCII is part of a word, and a
//! word holds no ASCII character but letters and digits), the `whitespace`
//! analyzer of the `descriptionWords` field on Elasticsearch.

use unicode_normalization::UnicodeNormalization;

/// The words of `text`, folded as the module says, in order, repeats kept.
/// None for a text of no letter or digit.
pub(crate) fn words(text: &str) -> Vec<String> {
    let composed: String = text.nfkc().collect();
    composed
        .split(|character: char| !character.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            word.to_lowercase()
                .replace('ς', "σ")
                .replace("i\u{307}", "i")
        })
        .collect()
}

/// The words of a description as an index keeps them: [`words`] joined by
/// single spaces; `None` when it has none.
pub(crate) fn indexed(description: &str) -> Option<String> {
    let words = words(description);
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits_in_lower_case() {
        assert_eq!(
            words("multi-agent,payout \"x\"* NEAR(a:b)^2 café_3"),
            ["multi", "agent", "payout", "x", "near", "a", "b", "2", "café", "3"]
        );
        assert!(words("-- * () 🎉").is_empty());
        assert_eq!(indexed("  Rent  March "), Some("rent march".to_owned()));
        assert_eq!(indexed("--"), None);
    }

    #[test]
    fn a_word_is_the_same_however_its_characters_were_typed() {
        // An accent typed as its own combining mark, a ligature, full width.
        assert_eq!(words("cafe\u{301}"), words("café"));
        assert_eq!(words("ﬁnance"), ["finance"]);
        assert_eq!(words("ＡＢＣ１"), ["abc1"]);
        // The final sigma, in capitals or not.
        assert_eq!(words("ΣΟΦΟΣ"), words("σοφος"));
        assert_eq!(words("Σοφός"), ["σοφόσ"]);
        // A capital `İ` is an `i`.
        assert_eq!(words("İstanbul"), ["istanbul"]);
        assert_eq!(words("ISTANBUL"), ["istanbul"]);
        // Case in a script cased since Unicode 11 (Georgian Mtavruli).
        assert_eq!(words("ᲡᲐᲥᲐᲠᲗᲕᲔᲚᲝ"), words("საქართველო"));
        // Emoji and symbols stuck to a word split it.
        assert_eq!(words("pay🎉day €5"), ["pay", "day", "5"]);
    }
}
