//! The words free text is matched by, made by this one function for both
//! indexes, so a search finds the same transactions on the embedded default
//! and on Elasticsearch/OpenSearch whatever the script of its text.
//!
//! Symbols (`General_Category=S*`: `™`, `€`, `+`, emoji) and enclosing marks
//! (a keycap's, a circle's) first become spaces, so they separate words,
//! before NFKC would spell some of them as letters (`™` as `TM`); a letter or
//! a digit stays one however it is shown (`2️⃣` is `2`, `ℹ️` is `i`). The text is then read in Unicode's compatibility composition (NFKC,
//! Unicode Standard Annex #15: `ﬁ` is `fi`, a letter and a combining accent
//! typed apart are the accented letter, full-width letters are the plain
//! ones), with every default-ignorable code point taken out
//! (`Default_Ignorable_Code_Point`, Unicode's `DerivedCoreProperties.txt`:
//! the invisible characters that only hint where to break or join, such as
//! the soft hyphen and the zero-width space, joiner and non-joiner; the
//! bidirectional marks and controls; variation selectors, which only choose a
//! glyph; tags; the Hangul fillers), so they neither split a word nor make
//! one. A word is a run that starts with a letter or a digit
//! ([`char::is_alphanumeric`], not a combining mark) and goes on over letters,
//! digits and combining marks (`General_Category=Mark`: an accent with no
//! precomposed letter, a virama, a vowel sign, a tone mark); spaces,
//! punctuation, symbols, emoji and a mark with no letter before it separate
//! words. Each word is lower-cased with Unicode's default case mapping
//! ([`str::to_lowercase`]), decomposed (NFD), folded where a case mapping
//! alone leaves two spellings of one word (the final sigma `ς` is `σ`, `ß` is
//! `ss` as in Unicode's full case folding, the Turkish dotless `ı` is `i`,
//! and a dot above an `i` is dropped: it is what a capital `İ` lower-cases
//! to, whatever other marks it carries), then composed again (NFKC: a capital
//! with no precomposed form, `J̌`, lower-cases to the letter and its mark, `ǰ`
//! is one character; `ı́` is `í`). Accents stay: `café` is not `cafe`. A word
//! longer than [`WORD_CHARS_MAX`] characters, counted once folded (`ß` is
//! two), is cut into pieces of at most that length, each a word, never
//! between a letter and its marks.
//!
//! A change to these rules changes the words of what is already indexed:
//! [`WORDS_VERSION`] names the rules, and an index whose words another
//! version made makes them again (the embedded index when opened;
//! Elasticsearch with `projection-consumer rebuild`).
//!
//! The indexes are given these words joined by spaces and only split them
//! there, folding nothing more: SQLite FTS5's `ascii` tokenizer on the
//! embedded index (every character outside ASCII is part of a word, and a
//! word holds no ASCII character but letters and digits), the `whitespace`
//! analyzer of the `descriptionWords` field on Elasticsearch (whose tokens
//! are at most 255 UTF-16 units: a word of [`WORD_CHARS_MAX`] characters is
//! at most 200).

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// The version of the rules above; raised with every change to them.
/// Version 4: symbols and enclosing marks separate words before NFKC, a
/// letter or digit stays one however it is shown; every default-ignorable
/// code point ignored (version 1 ignored eight of them and the variation
/// selectors); a word never starts with a mark, nor does a piece of a long
/// one; `ı` and the dot above an `i` folded on the decomposed word.
/// (Versions 2 and 3 were never released: builds between releases had them.)
pub(crate) const WORDS_VERSION: i64 = 4;

/// Characters of the longest word an index keeps whole; a longer run (a
/// sentence of a script written without spaces) is cut into such pieces.
pub(crate) const WORD_CHARS_MAX: usize = 100;

/// Whether `character` is a `Default_Ignorable_Code_Point` (Unicode 15.1,
/// `DerivedCoreProperties.txt`): invisible, it is taken out of the text.
fn is_default_ignorable(character: char) -> bool {
    matches!(
        character,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// `text` with every symbol and enclosing mark replaced by a space: they
/// separate words, whatever NFKC makes of them.
fn symbols_as_spaces(text: &str) -> String {
    text.chars()
        .map(|character| {
            let separates = character.general_category_group() == GeneralCategoryGroup::Symbol
                || character.general_category() == GeneralCategory::EnclosingMark;
            if separates {
                ' '
            } else {
                character
            }
        })
        .collect()
}

/// The runs that start with a letter or a digit and go on over letters,
/// digits and marks.
fn runs(text: &str) -> Vec<&str> {
    let mut runs = Vec::new();
    let mut start = None;
    for (at, character) in text.char_indices() {
        // Some marks are alphabetic too (a vowel sign, U+0345): a run never
        // starts with one.
        let mark = is_combining_mark(character);
        let continues = if start.is_some() {
            character.is_alphanumeric() || mark
        } else {
            character.is_alphanumeric() && !mark
        };
        match (start, continues) {
            (None, true) => start = Some(at),
            (Some(from), false) => {
                runs.push(&text[from..at]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        runs.push(&text[from..]);
    }
    runs
}

/// One word lower-cased, decomposed, folded and composed again as the
/// module says.
fn folded(word: &str) -> String {
    let mut folded = String::with_capacity(word.len());
    let mut base = None;
    for character in word.to_lowercase().nfd() {
        let character = if character == 'ı' { 'i' } else { character };
        if !is_combining_mark(character) {
            base = Some(character);
        } else if character == '\u{307}' && base == Some('i') {
            continue;
        }
        match character {
            'ς' => folded.push('σ'),
            'ß' => folded.push_str("ss"),
            other => folded.push(other),
        }
    }
    folded.nfkc().collect()
}

/// `word` cut into pieces of at most [`WORD_CHARS_MAX`] characters, each
/// ending before a letter or digit, so no piece starts with a mark (a run of
/// more marks than that is cut where it must).
fn pieces(word: &str) -> Vec<String> {
    let characters: Vec<char> = word.chars().collect();
    let mut pieces = Vec::new();
    let mut start = 0;
    while characters.len() - start > WORD_CHARS_MAX {
        let limit = start + WORD_CHARS_MAX;
        let end = (start + 1..=limit)
            .rev()
            .find(|&at| !is_combining_mark(characters[at]))
            .unwrap_or(limit);
        pieces.push(characters[start..end].iter().collect());
        start = end;
    }
    pieces.push(characters[start..].iter().collect());
    pieces
}

/// The words of `text`, folded as the module says, in order, repeats kept.
/// None for a text of no letter or digit.
pub(crate) fn words(text: &str) -> Vec<String> {
    // Taken out before composing (so an accent after one still composes with
    // its letter) and after (a compatibility character may compose to one).
    let visible = |character: &char| !is_default_ignorable(*character);
    let composed: String = symbols_as_spaces(text)
        .chars()
        .filter(visible)
        .nfkc()
        .filter(visible)
        .collect();
    runs(&composed)
        .into_iter()
        .flat_map(|word| pieces(&folded(word)))
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
        // Turkish: a capital `İ` and a dotless `ı` are an `i`.
        assert_eq!(words("İstanbul"), ["istanbul"]);
        assert_eq!(words("ISTANBUL"), ["istanbul"]);
        assert_eq!(words("DİYARBAKIR"), words("diyarbakır"));
        // A capital with no precomposed form lower-cases to the precomposed letter.
        assert_eq!(words("J\u{30C}ORDAN"), words("ǰordan"));
        // Full case folding's `ß`.
        assert_eq!(words("Straße STRASSE"), ["strasse", "strasse"]);
        // Case in a script cased since Unicode 11 (Georgian Mtavruli).
        assert_eq!(words("ᲡᲐᲥᲐᲠᲗᲕᲔᲚᲝ"), words("საქართველო"));
        // Emoji and symbols stuck to a word split it.
        assert_eq!(words("pay🎉day €5"), ["pay", "day", "5"]);
    }

    #[test]
    fn marks_stay_in_their_word_and_join_hints_join() {
        // An accent with no precomposed letter, a virama, a Thai tone mark.
        assert_eq!(words("q\u{303} alone"), ["q\u{303}", "alone"]);
        assert_eq!(words("ọ̀nà Yoruba").len(), 2);
        assert_eq!(words("हिन्दी").len(), 1);
        assert_eq!(words("ไม่").len(), 1);
        for hinted in ["pay\u{AD}ment", "pay\u{200B}ment", "pay\u{200D}ment"] {
            assert_eq!(words(hinted), ["payment"], "{hinted:?}");
        }
        // A mark with no letter before it, an emoji with its variation
        // selector: separators.
        assert_eq!(words("hello \u{301} world"), ["hello", "world"]);
        assert_eq!(words("\u{301}start"), ["start"]);
        assert_eq!(words("\u{2764}\u{FE0F}coffee"), ["coffee"]);
        assert!(words("\u{2764}\u{FE0F}").is_empty());
        assert_eq!(words("葛\u{E0100}城"), ["葛城"]);
        assert_eq!(words("می\u{200C}خواهم").len(), 1);
    }

    #[test]
    fn every_default_ignorable_code_point_is_taken_out() {
        for ignorable in [
            '\u{00AD}',
            '\u{034F}',
            '\u{061C}',
            '\u{115F}',
            '\u{1160}',
            '\u{17B4}',
            '\u{17B5}',
            '\u{180E}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202C}',
            '\u{202E}',
            '\u{2062}',
            '\u{2064}',
            '\u{2066}',
            '\u{206F}',
            '\u{3164}',
            '\u{FEFF}',
            '\u{FFA0}',
            '\u{1BCA0}',
            '\u{1D173}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{E01EF}',
        ] {
            let hidden = format!("pay{ignorable}ment");
            assert_eq!(words(&hidden), ["payment"], "{:X}", u32::from(ignorable));
            assert!(words(&ignorable.to_string()).is_empty());
        }
        // Between a letter and its accent, the accent still composes.
        assert_eq!(words("cafe\u{200B}\u{301}"), words("café"));
        // Neighbours of the ranges are kept: a letter, a symbol that separates.
        assert_eq!(words("a\u{1161}b"), ["a\u{1161}b"]);
        assert_eq!(words("a\u{2070}b"), ["a0b"]);
    }

    #[test]
    fn a_word_never_starts_with_a_mark_even_an_alphabetic_one() {
        // U+093E (a Devanagari vowel sign) and U+0345 are alphabetic marks.
        for lone in ["x \u{93E} lone", "x \u{345} lone"] {
            assert_eq!(words(lone), ["x", "lone"], "{lone:?}");
        }
        assert_eq!(words("का").len(), 1);
    }

    #[test]
    fn a_dotless_or_dotted_i_with_an_accent_is_the_accented_i() {
        assert_eq!(words("kı\u{301}"), words("k\u{ed}"));
        assert_eq!(words("Kİ\u{301}"), words("k\u{ed}"));
        assert_eq!(words("ki\u{301}"), ["k\u{ed}"]);
    }

    #[test]
    fn symbols_and_enclosing_marks_separate_words_whatever_nfkc_makes_of_them() {
        assert_eq!(words("Acme™ widget"), ["acme", "widget"]);
        assert_eq!(words("Acme® gadget"), ["acme", "gadget"]);
        assert_eq!(words("\u{24C2}\u{FE0F}metro \u{24C2}x"), ["metro", "x"]);
        assert_eq!(words("\u{1F170}\u{FE0F}plus \u{1F130}b"), ["plus", "b"]);
        assert_eq!(words("25℃ 5㎏"), ["25", "5"]);
        // A letter or digit is one however it is shown: a keycap in either
        // spelling is its digit, `ℹ️` is `i`, a selector after a letter is
        // nothing.
        assert_eq!(words("1\u{FE0F}\u{20E3}first"), ["1", "first"]);
        assert_eq!(words("1\u{20E3}2 3"), ["1", "2", "3"]);
        assert_eq!(
            words("\u{2139}\u{FE0F}nfo \u{2139}\u{FE0E}nfo"),
            ["info", "info"]
        );
        assert_eq!(words("Cafe\u{301}\u{FE0F}"), words("café"));
        assert_eq!(words("pay\u{FE0F}ment"), ["payment"]);
        // An enclosing mark only separates; what it encloses is spelt alike
        // however it was typed.
        assert_eq!(words("xcafé\u{20DD}"), words("xcafe\u{301}\u{20DD}"));
        assert_eq!(words("a\u{20DD}b"), ["a", "b"]);
    }

    #[test]
    fn every_dot_above_an_i_is_dropped_whatever_else_it_carries() {
        assert_eq!(words("kı\u{307}z"), ["kiz"]);
        assert_eq!(words("XI\u{323}\u{307}Y"), words("xịy"));
        assert_eq!(words("Xİ\u{323}Y"), words("xịy"));
    }

    #[test]
    fn a_piece_of_a_long_word_never_starts_with_a_mark() {
        let word = format!("{}q\u{303}bc", "a".repeat(WORD_CHARS_MAX - 1));
        let cut = words(&word);
        assert_eq!(
            cut,
            ["a".repeat(WORD_CHARS_MAX - 1), "q\u{303}bc".to_owned()]
        );
        let marks = format!("a{}", "\u{303}".repeat(WORD_CHARS_MAX + 5));
        let cut = words(&marks);
        assert!(cut
            .iter()
            .all(|piece| piece.chars().count() <= WORD_CHARS_MAX));
        assert_eq!(cut.concat(), marks.nfkc().collect::<String>());
    }

    #[test]
    fn a_word_is_cut_by_its_length_once_folded() {
        let sharp = format!("{}x", "ß".repeat(50));
        assert_eq!(words(&sharp), ["ss".repeat(50), "x".to_owned()]);
    }

    #[test]
    fn a_long_word_is_cut_into_pieces_an_analyzer_keeps_whole() {
        let long = "𐐨".repeat(WORD_CHARS_MAX + 30);
        let pieces = words(&long);
        assert_eq!(pieces.len(), 2);
        assert!(pieces
            .iter()
            .all(|piece| piece.encode_utf16().count() <= 255));
        assert_eq!(pieces.concat(), long.to_lowercase());
    }
}
