//! Values stored as JSON text columns (documents, lists, policies): written
//! and read back the same way in every service, with errors that say what
//! could not be stored or read.

use sea_orm::DbErr;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `value` as the text of a JSON column.
pub fn to_column<T: Serialize>(value: &T) -> Result<String, DbErr> {
    serde_json::to_string(value).map_err(|e| DbErr::Custom(format!("cannot be stored: {e}")))
}

/// A JSON column read back; `what` names it in the error.
pub fn from_column<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, DbErr> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

/// A stored value that does not read back as it was written.
pub fn corrupt(what: &str, e: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("stored {what} cannot be read: {e}"))
}
