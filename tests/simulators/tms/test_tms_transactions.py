"""GetTransactionsSince replays every create, update and delete in order, paged with ListIncomplete (§7.5)."""

from __future__ import annotations

from datetime import timedelta

from tms_wire import NS, T0, conference_xml


def txs(result, op="GetTransactionsSince"):
    return [
        (
            int(t.find(f"{{{NS}}}TransactionId").text),
            int(t.find(f"{{{NS}}}ConferenceId").text),
            t.find(f"{{{NS}}}TransType").text,
        )
        for t in result.findall(f"tns:{op}Result/tns:Transaction")
    ]


def make_history(client):
    """New A, New B, Updated A, Deleted B; returns the conference ids."""
    a = client.call("SaveConference", conference_xml(key="a"))
    a_id = int(a.value("tns:SaveConferenceResult/tns:ConferenceId"))
    b = client.call("SaveConference", conference_xml(key="b", systems=(12,)))
    b_id = int(b.value("tns:SaveConferenceResult/tns:ConferenceId"))
    assert client.call("SaveConference", conference_xml(key="a", title="Renamed")).status == 200
    assert client.call("DeleteConferenceById", f"<ConferenceId>{b_id}</ConferenceId>").status == 200
    return a_id, b_id


def test_transactions_replay_every_change_in_order(tms):
    """From 0, the log holds New, New, Updated, Deleted with increasing ids and the right conferences."""
    client = tms.client
    a_id, b_id = make_history(client)
    result = client.call("GetTransactionsSince", "<CurrentTransactionId>0</CurrentTransactionId>")
    log = txs(result)
    assert [(c, k) for _, c, k in log] == [(a_id, "New"), (b_id, "New"), (a_id, "Updated"), (b_id, "Deleted")]
    ids = [i for i, _, _ in log]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4
    assert result.find("tns:GetTransactionsSinceResult/tns:Transaction/tns:PerformedByUserId").text == "16387"
    assert result.find("tns:GetTransactionsSinceResult/tns:Transaction/tns:ParticipantIds").text == "11"


def test_the_given_transaction_is_excluded(tms):
    """GetTransactionsSince(id) starts after id; the saved conference's TransactionId is a valid start."""
    client = tms.client
    first = client.call(
        "SaveConferenceWithMode", conference_xml(key="a") + "<BookingMode>Strict</BookingMode>"
    )
    start = int(first.value("tns:SaveConferenceWithModeResult/tns:Conference/tns:TransactionId"))
    client.call("SaveConference", conference_xml(key="b", systems=(12,)))
    log = txs(client.call("GetTransactionsSince", f"<CurrentTransactionId>{start}</CurrentTransactionId>"))
    assert [k for _, _, k in log] == ["New"]
    assert all(i > start for i, _, _ in log)


def test_paging_with_list_incomplete(tms):
    """With a page size of 2, pages end in ListIncomplete until the last page, and together replay all."""
    client = tms.client
    tms.sim.control("knobs", "POST", {"transactions_page_size": 2})
    for n in range(5):
        start = T0 + timedelta(hours=1 + 2 * n)
        assert client.call("SaveConference", conference_xml(key=f"k{n}", start=start)).status == 200
    seen: list[int] = []
    since, pages = 0, 0
    while True:
        page = txs(
            client.call("GetTransactionsSince", f"<CurrentTransactionId>{since}</CurrentTransactionId>")
        )
        pages += 1
        real = [t for t in page if t[2] != "ListIncomplete"]
        seen.extend(i for i, _, _ in real)
        if page and page[-1][2] == "ListIncomplete":
            assert len(real) == 2
            since = real[-1][0]
            continue
        break
    assert pages == 3
    assert len(seen) == 5
    assert seen == sorted(seen)


def test_unknown_transaction_id_faults(tms):
    """An id that does not exist gives a fault (§7.5)."""
    result = tms.client.call("GetTransactionsSince", "<CurrentTransactionId>987654</CurrentTransactionId>")
    assert result.status == 500
    assert result.fault_code == tms.sim.knobs.code("unknown_transaction")


def test_with_external_id_carries_the_external_keys(tms):
    """GetTransactionsSinceWithExternalId adds each conference's external keys."""
    client = tms.client
    make_history(client)
    result = client.call(
        "GetTransactionsSinceWithExternalId", "<CurrentTransactionId>0</CurrentTransactionId>"
    )
    keys = [
        t.find(f"{{{NS}}}ExternalPrimaryKey").text
        for t in result.findall("tns:GetTransactionsSinceWithExternalIdResult/tns:Transaction")
    ]
    assert keys == ["a", "b", "a", "b"]


def test_end_and_instance_changes_are_recorded(tms12):
    """Ending a running conference is an Updated transaction."""
    client = tms12.client
    a_id, _ = make_history(client)
    tms12.clock.advance(3600 + 30)
    assert client.call("EndConferenceById", f"<ConferenceId>{a_id}</ConferenceId>").status == 200
    log = txs(client.call("GetTransactionsSince", "<CurrentTransactionId>0</CurrentTransactionId>"))
    assert log[-1][1:] == (a_id, "Updated")


def test_get_recording_aliases_is_empty_in_the_lab(tms):
    """GetRecordingAliases answers an empty ArrayOfRecordingDevice (the lab has no recorders)."""
    result = tms.client.call("GetRecordingAliases", "<UserName>LAB\\alice</UserName>")
    assert result.status == 200
    assert result.find("tns:GetRecordingAliasesResult") is not None
    assert len(result.find("tns:GetRecordingAliasesResult")) == 0
