//! Migration building blocks every service's migrator uses: one migration
//! per created table, with its indexes, and the usual column shapes.

use sea_orm_migration::prelude::*;

/// A migration that creates one table and its indexes.
pub struct CreateTable {
    /// `mYYYYMMDD_NNNNNN_create_<table>`, never changed once released.
    pub name: &'static str,
    pub table: TableCreateStatement,
    pub indexes: Vec<IndexCreateStatement>,
}

impl MigrationName for CreateTable {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTable {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(self.table.clone()).await?;
        for index in &self.indexes {
            manager.create_index(index.clone()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = self
            .table
            .get_table_name()
            .cloned()
            .ok_or_else(|| DbErr::Migration("table without a name".into()))?;
        manager
            .drop_table(Table::drop().table(table).to_owned())
            .await
    }
}

/// A migration that adds one column to a table (one column per
/// statement: SQLite alters one thing at a time).
pub struct AddColumn {
    /// `mYYYYMMDD_NNNNNN_add_<table>_<column>`, never changed once released.
    pub name: &'static str,
    pub table: &'static str,
    pub column: ColumnDef,
}

impl MigrationName for AddColumn {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddColumn {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(self.table)
                    .add_column(self.column.clone())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(self.table)
                    .drop_column(self.column.get_column_name())
                    .to_owned(),
            )
            .await
    }
}

/// An index on `cols` of `table`.
pub fn index(name: &str, table: &str, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index.if_not_exists().name(name).table(table.to_owned());
    for col in cols {
        index.col(ToString::to_string(col));
    }
    if unique {
        index.unique();
    }
    index.to_owned()
}

/// A timestamp column that is always set.
pub fn at(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_owned())
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

/// A timestamp column that may be empty.
pub fn at_null(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_owned())
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

/// A UUID column that is always set.
pub fn uuid(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_owned()).uuid().not_null().to_owned()
}

/// A UUID column that may be empty.
pub fn uuid_null(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_owned()).uuid().null().to_owned()
}

/// A short string column (names, states, kinds).
pub fn string(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_owned())
        .string()
        .not_null()
        .to_owned()
}

/// A text column (free text, JSON documents).
pub fn text(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_owned()).text().not_null().to_owned()
}

/// A text column that may be empty.
pub fn text_null(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_owned()).text().null().to_owned()
}

/// A 32-bit integer column.
pub fn int(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_owned())
        .integer()
        .not_null()
        .to_owned()
}

/// A boolean column.
pub fn boolean(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_owned())
        .boolean()
        .not_null()
        .to_owned()
}
