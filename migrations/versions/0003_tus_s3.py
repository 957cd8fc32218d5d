"""tus uploads on S3: upload rows and their parts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 20:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tus_uploads',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('length', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('record', sa.Text(), nullable=False),
    sa.Column('upload_offset', sa.BigInteger(), nullable=False),
    sa.Column('multipart_id', sa.String(length=1024), nullable=True),
    sa.Column('tail_key', sa.String(length=1024), nullable=True),
    sa.Column('tail_size', sa.BigInteger(), nullable=False),
    sa.Column('stored', sa.Boolean(), nullable=False),
    sa.Column('finished', sa.Boolean(), nullable=False),
    sa.Column('gone_reason', sa.String(length=32), nullable=True),
    sa.Column('gone_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tus_uploads'))
    )
    with op.batch_alter_table('tus_uploads', schema=None) as batch_op:
        batch_op.create_index('ix_tus_uploads_owner', ['owner'], unique=False)

    op.create_table('tus_upload_parts',
    sa.Column('upload_id', sa.String(length=32), nullable=False),
    sa.Column('number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('etag', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['tus_uploads.id'], name=op.f('fk_tus_upload_parts_upload_id_tus_uploads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id', 'number', name=op.f('pk_tus_upload_parts'))
    )


def downgrade() -> None:
    op.drop_table('tus_upload_parts')
    with op.batch_alter_table('tus_uploads', schema=None) as batch_op:
        batch_op.drop_index('ix_tus_uploads_owner')

    op.drop_table('tus_uploads')
