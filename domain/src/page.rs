//! A page of a list the control center reads: `limit` rows (1 to 200, default 50) from
//! `offset` (0 or more, default 0). Each list refuses another page with its own
//! `invalid_page` error.

/// The largest page a list answers.
pub const MAX_LIMIT: i64 = 200;

/// `(limit, offset)` with the defaults filled in; `None` when either is out of range.
pub fn checked(limit: Option<i64>, offset: Option<i64>) -> Option<(i64, i64)> {
    let (limit, offset) = (limit.unwrap_or(50), offset.unwrap_or(0));
    ((1..=MAX_LIMIT).contains(&limit) && offset >= 0).then_some((limit, offset))
}

#[cfg(test)]
mod tests {
    use super::checked;

    #[test]
    fn pages_are_1_to_200_rows_from_0_or_later() {
        assert_eq!(checked(None, None), Some((50, 0)));
        assert_eq!(checked(Some(200), Some(7)), Some((200, 7)));
        for (limit, offset) in [(Some(0), None), (Some(201), None), (None, Some(-1))] {
            assert_eq!(checked(limit, offset), None, "{limit:?} {offset:?}");
        }
    }
}
