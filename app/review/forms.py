"""The reviewer pages' forms: a new assessment, a new session, and a capture's review decision."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length

from services.models import ReviewStatus

DECISIONS = {
    "approve": ReviewStatus.APPROVED,
    "reject": ReviewStatus.REJECTED,
    "reset": ReviewStatus.PENDING,
}


class AssessmentForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Length(max=5000)])


class SessionForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired(), Length(max=200)])
    # Admins choose who operates the session; for operators the field is absent and ignored.
    operator_id = SelectField("Operator", choices=[], default="")


class ReviewForm(FlaskForm):
    decision = StringField(validators=[AnyOf(list(DECISIONS))])
    note = TextAreaField("Note", validators=[Length(max=5000)])
