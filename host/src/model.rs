//! What the domain's records share, whoever shows them: the optimistic-concurrency version
//! every mutable record carries (the API sends it as the ETag and expects it back in
//! `If-Match`), and patch fields that may be set to `null`.

/// A record that carries an optimistic-concurrency version.
pub trait Versioned {
    fn version(&self) -> i64;
}

/// For patch fields that may be set to `null`: absent → `None`, `null` → `Some(None)`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}
