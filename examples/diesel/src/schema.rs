// @generated automatically by Diesel CLI.

diesel::table! {
    blog (id) {
        id -> Int4,
        title -> Nullable<Text>,
        content -> Nullable<Text>,
    }
}
