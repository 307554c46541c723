//! A board's labels on the wire: a name and a colour, put on cards.
//!
//! Colours come from a fixed palette rather than any hex value, so every
//! label reads well on a card in light and dark themes, and a colour name
//! is all a client has to show.

use serde::{Deserialize, Serialize};

/// Longest label name, in characters, after trimming.
pub const LABEL_NAME_MAX_CHARS: usize = 30;
/// Most labels one board may have.
pub const LABELS_PER_BOARD_MAX: usize = 50;
/// Most labels on one card.
pub const LABELS_PER_TASK_MAX: usize = 10;

/// The colours a label may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelColor {
    Gray,
    Red,
    Orange,
    Yellow,
    Green,
    Teal,
    Blue,
    Purple,
    Pink,
}

impl LabelColor {
    pub const ALL: [LabelColor; 9] = [
        LabelColor::Gray,
        LabelColor::Red,
        LabelColor::Orange,
        LabelColor::Yellow,
        LabelColor::Green,
        LabelColor::Teal,
        LabelColor::Blue,
        LabelColor::Purple,
        LabelColor::Pink,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LabelColor::Gray => "gray",
            LabelColor::Red => "red",
            LabelColor::Orange => "orange",
            LabelColor::Yellow => "yellow",
            LabelColor::Green => "green",
            LabelColor::Teal => "teal",
            LabelColor::Blue => "blue",
            LabelColor::Purple => "purple",
            LabelColor::Pink => "pink",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A label of a board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub id: i64,
    pub board_id: i64,
    pub name: String,
    pub color: LabelColor,
}

/// Body of `POST /boards/{id}/labels`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLabel {
    pub name: String,
    pub color: LabelColor,
}

/// Body of `PATCH /boards/{id}/labels/{label}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<LabelColor>,
}

/// Why a label name or a card's labels were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("label name must not be empty")]
    Empty,
    #[error("label name must be at most {LABEL_NAME_MAX_CHARS} characters")]
    TooLong,
    #[error("label name must not contain control characters")]
    Control,
    #[error("a card has at most {LABELS_PER_TASK_MAX} labels")]
    TooMany,
}

/// Trims and checks a label name; returns the name to store.
pub fn validate_label_name(name: &str) -> Result<String, LabelError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(LabelError::Empty);
    }
    if name.chars().count() > LABEL_NAME_MAX_CHARS {
        return Err(LabelError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(LabelError::Control);
    }
    Ok(name.to_owned())
}

/// A card's label ids, deduplicated in the order given and bounded.
pub fn validate_task_labels(ids: &[i64]) -> Result<Vec<i64>, LabelError> {
    let mut out: Vec<i64> = Vec::with_capacity(ids.len().min(LABELS_PER_TASK_MAX));
    for &id in ids {
        if !out.contains(&id) {
            if out.len() == LABELS_PER_TASK_MAX {
                return Err(LabelError::TooMany);
            }
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_label_name("  bug ").unwrap(), "bug");
        assert_eq!(validate_label_name(" "), Err(LabelError::Empty));
        assert_eq!(
            validate_label_name(&"x".repeat(31)),
            Err(LabelError::TooLong)
        );
        assert!(validate_label_name(&"é".repeat(30)).is_ok());
        assert_eq!(validate_label_name("a\u{7}b"), Err(LabelError::Control));
    }

    #[test]
    fn a_card_has_distinct_labels_up_to_the_bound() {
        assert_eq!(validate_task_labels(&[3, 1, 3]).unwrap(), vec![3, 1]);
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(validate_task_labels(&ten).unwrap(), ten);
        let mut eleven = ten.clone();
        eleven.push(11);
        assert_eq!(validate_task_labels(&eleven), Err(LabelError::TooMany));
    }

    #[test]
    fn colours_round_trip() {
        for c in LabelColor::ALL {
            assert_eq!(LabelColor::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert_eq!(LabelColor::parse("#ff0000"), None);
    }
}
