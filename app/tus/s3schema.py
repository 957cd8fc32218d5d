"""The S3 store's tables in PostgreSQL (SQLAlchemy Core): one row per upload with its record,
offset and multipart state, one row per stored part. Migrations 0003 to 0005 create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

# The same naming convention as the application's models, so constraint names match the
# migration whoever creates the tables.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

tus_uploads = Table(
    "tus_uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("length", BigInteger, nullable=True),  # NULL: deferred
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    # The rest of the record (metadata, concatenation, finish headers) as JSON text: only the
    # tus core reads it, and it changes with the core, not with this schema.
    Column("record", Text, nullable=False),
    # Bytes stored: the recorded parts plus the tail. Only ever raised after the bytes are in S3.
    Column("upload_offset", BigInteger, nullable=False, default=0),
    Column("multipart_id", String(1024), nullable=True),  # S3 UploadId, NULL until a first part
    Column("tail_key", String(1024), nullable=True),  # the bytes after the last part, if any
    Column("tail_size", BigInteger, nullable=False, default=0),
    # The last S3 PartNumber handed out (reserve_part): a number is never used twice, so a
    # writer that lost its lock can never replace a part another writer recorded.
    Column("next_part", Integer, nullable=False, default=0, server_default="0"),
    Column("stored", Boolean, nullable=False, default=False),  # the whole object is in S3
    Column("finished", Boolean, nullable=False, default=False),  # the finish hook has run
    # The finished object now belongs to a capture store in the same bucket (hand_over):
    # termination and retirement leave it where it is.
    Column("handed_over", Boolean, nullable=False, default=False, server_default=false()),
    Column("gone_reason", String(32), nullable=True),  # a tombstone: terminated, expired, ...
    Column("gone_at", DateTime(timezone=True), nullable=True),
    Index("ix_tus_uploads_owner", "owner"),
)

tus_upload_parts = Table(
    "tus_upload_parts",
    metadata,
    Column(
        "upload_id",
        String(32),
        ForeignKey("tus_uploads.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("number", Integer, primary_key=True, autoincrement=False),  # S3 PartNumber, 1..10000
    Column("size", BigInteger, nullable=False),
    Column("etag", String(255), nullable=False),
)
