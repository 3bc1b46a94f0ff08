//! The page's language: the declared one (`<html lang>`) normalized to its primary
//! subtag, else detected from the text with whatlang, as an ISO 639-1 code when the
//! language has one (else whatlang's ISO 639-3 code).

/// Pairs of whatlang's ISO 639-3 codes and their ISO 639-1 equivalents.
const ISO_639_3_TO_1: [(&str, &str); 70] = [
    ("afr", "af"),
    ("aka", "ak"),
    ("amh", "am"),
    ("ara", "ar"),
    ("aze", "az"),
    ("bel", "be"),
    ("ben", "bn"),
    ("bul", "bg"),
    ("cat", "ca"),
    ("ces", "cs"),
    ("cmn", "zh"),
    ("cym", "cy"),
    ("dan", "da"),
    ("deu", "de"),
    ("ell", "el"),
    ("eng", "en"),
    ("epo", "eo"),
    ("est", "et"),
    ("fin", "fi"),
    ("fra", "fr"),
    ("guj", "gu"),
    ("heb", "he"),
    ("hin", "hi"),
    ("hrv", "hr"),
    ("hun", "hu"),
    ("hye", "hy"),
    ("ind", "id"),
    ("ita", "it"),
    ("jav", "jv"),
    ("jpn", "ja"),
    ("kan", "kn"),
    ("kat", "ka"),
    ("khm", "km"),
    ("kor", "ko"),
    ("lat", "la"),
    ("lav", "lv"),
    ("lit", "lt"),
    ("mal", "ml"),
    ("mar", "mr"),
    ("mkd", "mk"),
    ("mya", "my"),
    ("nep", "ne"),
    ("nld", "nl"),
    ("nob", "nb"),
    ("ori", "or"),
    ("pan", "pa"),
    ("pes", "fa"),
    ("pol", "pl"),
    ("por", "pt"),
    ("ron", "ro"),
    ("rus", "ru"),
    ("sin", "si"),
    ("slk", "sk"),
    ("slv", "sl"),
    ("sna", "sn"),
    ("spa", "es"),
    ("srp", "sr"),
    ("swe", "sv"),
    ("tam", "ta"),
    ("tel", "te"),
    ("tgl", "tl"),
    ("tha", "th"),
    ("tuk", "tk"),
    ("tur", "tr"),
    ("ukr", "uk"),
    ("urd", "ur"),
    ("uzb", "uz"),
    ("vie", "vi"),
    ("yid", "yi"),
    ("zul", "zu"),
];

/// The page language: `declared` (a BCP 47 tag such as `en-US`) when usable, else the
/// language detected in `text` when whatlang is confident.
pub fn page_language(declared: Option<&str>, text: &str) -> Option<String> {
    declared.and_then(primary_subtag).or_else(|| detect(text))
}

/// `en-US` → `en`, `EN_gb` → `en`; `None` for values that are not a language tag.
fn primary_subtag(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    let valid =
        (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
    valid.then_some(primary)
}

fn detect(text: &str) -> Option<String> {
    let info = whatlang::detect(text)?;
    if !info.is_reliable() {
        return None;
    }
    let code = info.lang().code();
    let short = ISO_639_3_TO_1
        .iter()
        .find(|(long, _)| *long == code)
        .map_or(code, |(_, short)| short);
    Some(short.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_language_is_normalized() {
        assert_eq!(page_language(Some("en-US"), "").as_deref(), Some("en"));
        assert_eq!(page_language(Some(" DE_at "), "").as_deref(), Some("de"));
        assert_eq!(page_language(Some("fil"), "").as_deref(), Some("fil"));
    }

    #[test]
    fn unusable_declarations_fall_back_to_detection() {
        let french = "Le renard brun rapide saute par-dessus le chien paresseux. \
                      Les enfants jouent dans le jardin pendant que leurs parents \
                      préparent le dîner pour toute la famille.";
        assert_eq!(page_language(None, french).as_deref(), Some("fr"));
        assert_eq!(page_language(Some(""), french).as_deref(), Some("fr"));
        assert_eq!(page_language(Some("x1"), french).as_deref(), Some("fr"));
    }

    #[test]
    fn too_little_text_gives_no_language() {
        assert_eq!(page_language(None, ""), None);
        assert_eq!(page_language(None, "ok"), None);
    }

    #[test]
    fn every_mapping_is_well_formed() {
        for (long, short) in ISO_639_3_TO_1 {
            assert_eq!(long.len(), 3);
            assert_eq!(short.len(), 2);
            assert!(whatlang::Lang::from_code(long).is_some(), "{long}");
        }
    }
}
