"""The one list of session-state and widget keys the app uses. Values kept are ids and primitives only.

streamlit-authenticator owns `authentication_status`, `name`, `username`, `email`, `roles` and `logout`:
no widget or key here may use those names.
"""

from __future__ import annotations

# Set by the entrypoint on every run from the users table: the signed-in user's role ("mentor"/"admin").
ROLE = "desk_role"
# A message to show once at the top of the next run of a page: (level, text), level "success" or "error".
FLASH = "desk_flash"

# Mentor: My sessions.
MENTOR_VERSION = "mentor_tables_version"  # bumped after each action so table selections start afresh
MENTOR_PENDING_TABLE = "mentor_pending_table"  # + version
MENTOR_MARKED_TABLE = "mentor_marked_table"  # + version
MENTOR_CONFIRM_NO_SHOW = "mentor_no_show_awaiting"  # the booking id whose no-show awaits confirmation
MENTOR_ATTENDED_BUTTON = "mentor_attended_button"
MENTOR_NO_SHOW_BUTTON = "mentor_no_show_button"
MENTOR_CONFIRM_BUTTON = "mentor_confirm_no_show_button"
MENTOR_CANCEL_BUTTON = "mentor_cancel_no_show_button"
MENTOR_RESET_BUTTON = "mentor_reset_button"

# Admin: Audit.
AUDIT_ATTRIBUTION = "audit_attribution"
AUDIT_SINCE = "audit_since"
AUDIT_UNTIL = "audit_until"
AUDIT_MENTOR = "audit_mentor"
AUDIT_MENTEE = "audit_mentee"
AUDIT_PAGE = "audit_page"  # + list name: the page number of that list
AUDIT_REPROBATION_TABLE = "audit_reprobation_table"
AUDIT_CSV_BUTTON = "audit_csv_button"  # + list name

# Admin: Automated damage.
DAMAGE_SINCE = "damage_since"
DAMAGE_UNTIL = "damage_until"
DAMAGE_UNATTRIBUTED = "damage_include_unattributed"
DAMAGE_SCOPE = "damage_scope"  # "all" or "chosen"
DAMAGE_MENTEES = "damage_mentees"  # mentee ids
DAMAGE_REASON = "damage_reason"
DAMAGE_CONFIRM = "damage_confirm"
DAMAGE_RESULT = "damage_result"  # the last revert's result as a dict of ids and counts
DAMAGE_REVERT_BUTTON = "damage_revert_button"
DAMAGE_CONFIRM_BUTTON = "damage_confirm_button"
DAMAGE_CANCEL_BUTTON = "damage_cancel_button"
DAMAGE_DISMISS_BUTTON = "damage_dismiss_button"

# Admin: Audit log.
LOG_ACTOR = "log_actor"
LOG_ACTION = "log_action"
LOG_OPERATION = "log_operation"
LOG_PAGE = "log_page"
LOG_TABLE = "log_table"

# Admin: Mark on behalf.
BEHALF_BOOKING = "behalf_booking"
BEHALF_ACTION = "behalf_action"
BEHALF_REASON = "behalf_reason"
BEHALF_CONFIRM = "behalf_awaiting"  # {"booking_id", "action", "reason"} awaiting confirmation
BEHALF_FORM = "behalf_form"
BEHALF_CONFIRM_BUTTON = "behalf_confirm_button"
BEHALF_CANCEL_BUTTON = "behalf_cancel_button"

# Admin: Notifications.
NOTIFY_STATUS = "notify_status"
NOTIFY_KIND = "notify_kind"
NOTIFY_VERSION = "notify_version"  # bumped after a retry so the table selection starts afresh
NOTIFY_TABLE = "notify_table"  # + version
NOTIFY_RETRY_BUTTON = "notify_retry_button"

# Analytics (both roles; a mentor's scope is always their own sessions).
ANALYTICS_RANGE = "analytics_range"  # (first day, last day)
ANALYTICS_MENTOR = "analytics_mentor"  # admin only: a mentor id, or None for all
ANALYTICS_MENTEE_SORT = "analytics_mentee_sort"
ANALYTICS_MENTEE_DESCENDING = "analytics_mentee_descending"
ANALYTICS_MENTOR_TABLE = "analytics_mentor_table"
ANALYTICS_MENTEE_TABLE = "analytics_mentee_table"
ANALYTICS_BACKLOG_TABLE = "analytics_backlog_table"
ANALYTICS_CSV_BUTTON = "analytics_csv_button"  # + table name

# The entrypoint's sign-in form and sign-out button.
LOGIN_FORM = "desk_login"
LOGOUT_BUTTON = "desk_logout"


def versioned(key: str, version: int) -> str:
    """A widget key that changes with `version`, so the widget starts afresh after an action."""
    return f"{key}_{version}"
