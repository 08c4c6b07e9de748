"""The event-name vocabulary: every structured log event xesync emits, in one place.

Names are dotted lower snake case, ``<subject>.<past_verb>``. Values go into keys, never into the
event string: ``log.info(events.BOOKING_CREATED, room=..., uid=..., conference_id=...)``.
"""

from __future__ import annotations

from typing import Final

# lifecycle
DAEMON_STARTED: Final = "daemon.started"
DAEMON_STOPPING: Final = "daemon.stopping"
DAEMON_STOPPED: Final = "daemon.stopped"
CONFIG_LOADED: Final = "config.loaded"
STORE_OPENED: Final = "store.opened"
STORE_MIGRATED: Final = "store.migrated"
STORE_MODE_TIGHTENED: Final = "store.mode_tightened"
COMMAND_FAILED: Final = "command.failed"
ERROR_UNEXPECTED: Final = "error.unexpected"

# runs
SYNC_STARTED: Final = "sync.started"
SYNC_FINISHED: Final = "sync.finished"
ROOM_SYNCED: Final = "room.synced"
ROOM_FAILED: Final = "room.failed"

# actions
BOOKING_CREATED: Final = "booking.created"
BOOKING_UPDATED: Final = "booking.updated"
BOOKING_CANCELLED: Final = "booking.cancelled"
BOOKING_SKIPPED: Final = "booking.skipped"
MEETING_ACCEPTED: Final = "meeting.accepted"
MEETING_DECLINED: Final = "meeting.declined"
MEETING_REFUSED: Final = "meeting.refused"
MEETING_SKIPPED: Final = "meeting.skipped"
MEETING_SUBJECT_REPLACED: Final = "meeting.subject_replaced"
MEETING_BODY_UPDATED: Final = "meeting.body_updated"
MEETING_FAILED: Final = "meeting.failed"
ORGANISER_NOTIFIED: Final = "organiser.notified"
BOOKING_OWNER_DEFAULTED: Final = "booking.owner_defaulted"
BOOKING_OWNER_MISMATCHED: Final = "booking.owner_mismatched"
BOOKING_REJECTED: Final = "booking.rejected"
BOOKING_PLANNED: Final = "booking.planned"
OCCURRENCE_CANCELLED: Final = "occurrence.cancelled"
OCCURRENCE_MOVED: Final = "occurrence.moved"

# checks
CMS_CALL_CHECKED: Final = "cms.call_checked"
LICENCE_SMP_USED: Final = "licence.smp_used"
LICENCE_SMP_PREDICTED: Final = "licence.smp_predicted"
LICENCE_PREDICTION_FAILED: Final = "licence.prediction_failed"
CMS_OWNER_SET: Final = "cms.owner_set"
CMS_OWNER_CLEARED: Final = "cms.owner_cleared"
CMS_OWNER_FIXUP_FAILED: Final = "cms.owner_fixup_failed"
GUARD_MASS_CANCEL_REFUSED: Final = "guard.mass_cancel_refused"

# outbound
TMS_REQUEST_FAILED: Final = "tms.request_failed"
TMS_SESSION_RENEWED: Final = "tms.session_renewed"
CMS_REQUEST_FAILED: Final = "cms.request_failed"
EWS_SYNC_STATE_RESET: Final = "ews.sync_state_reset"
EWS_ITEM_SKIPPED: Final = "ews.item_skipped"
LDAP_CONNECTED: Final = "ldap.connected"
LDAP_RECONNECTED: Final = "ldap.reconnected"
LDAP_USER_NOT_FOUND: Final = "ldap.user_not_found"
LDAP_USER_RESOLVED: Final = "ldap.user_resolved"
LDAP_REQUEST_FAILED: Final = "ldap.request_failed"
LDAP_MEMBERSHIP_DETECTED: Final = "ldap.membership_detected"
RETRY_ATTEMPTED: Final = "retry.attempted"

# service (systemd notify, health and metrics listener)
SYSTEMD_NOTIFY_FAILED: Final = "systemd.notify_failed"
HEALTH_STARTED: Final = "health.started"
HEALTH_STOPPED: Final = "health.stopped"
HEALTH_REQUEST_FAILED: Final = "health.request_failed"

# daemon (xesync run)
DAEMON_READIED: Final = "daemon.readied"
DAEMON_RELOADED: Final = "daemon.reloaded"
CONFIG_RELOAD_REFUSED: Final = "config.reload_refused"
JOB_FAILED: Final = "job.failed"
ROOM_WAKE_REQUESTED: Final = "room.wake_requested"
RECONCILE_STARTED: Final = "reconcile.started"
RECONCILE_FINISHED: Final = "reconcile.finished"
HOUSEKEEPING_FINISHED: Final = "housekeeping.finished"
LICENCE_CHECKS_FINISHED: Final = "licence.checks_finished"
EWS_STREAM_CONNECTED: Final = "ews.stream_connected"
EWS_STREAM_CLOSED: Final = "ews.stream_closed"
EWS_STREAM_FAILED: Final = "ews.stream_failed"
CHECK_FINISHED: Final = "check.finished"

# lab
LAB_STARTED: Final = "lab.started"
LAB_STOPPED: Final = "lab.stopped"
LAB_REQUEST_HANDLED: Final = "lab.request_handled"
LAB_FAULT_INJECTED: Final = "lab.fault_injected"
LAB_CLOCK_CHANGED: Final = "lab.clock_changed"
LAB_CLOCK_LISTENER_FAILED: Final = "lab.clock_listener_failed"
LAB_HANDLER_FAILED: Final = "lab.handler_failed"
LAB_CLIENT_DISCONNECTED: Final = "lab.client_disconnected"
LAB_EWS_MEETING_RESPONDED: Final = "lab.ews_meeting_responded"
LAB_CONFERENCE_STARTED: Final = "lab.conference_started"
LAB_CONFERENCE_ENDED: Final = "lab.conference_ended"
LAB_CONFERENCE_EXTENDED: Final = "lab.conference_extended"
LAB_LDAP_SYNCED: Final = "lab.ldap_synced"
LAB_TMS_CMS_FAILED: Final = "lab.tms_cms_failed"
LAB_TMS_DIRECTORY_FAILED: Final = "lab.tms_directory_failed"
LAB_LDAP_SYNC_FAILED: Final = "lab.ldap_sync_failed"
LAB_CALL_STARTED: Final = "lab.call_started"
LAB_CALL_ENDED: Final = "lab.call_ended"
LAB_LICENCE_ASSIGNED: Final = "lab.licence_assigned"
LAB_SPACE_SKIPPED: Final = "lab.space_skipped"
LAB_CONFIG_SECTION_OMITTED: Final = "lab.config_section_omitted"
