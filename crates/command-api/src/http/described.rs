//! Schemas with the meaning of their field as their description.

/// Defines each `fn $name()`: the schema `$base()` builds, with `$text` as its
/// description. utoipa's `#[schema(schema_with = …)]` takes a field's whole
/// schema from a function and leaves the field's doc comment out of the
/// document, so a field whose schema comes from a function states what it
/// means (what null or absent stands for, its unit, its order) through one
/// of these.
macro_rules! described_schema {
    ($($name:ident = $base:path, $text:expr;)+) => {
        $(
            fn $name() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
                $base().description(Some($text))
            }
        )+
    };
}
