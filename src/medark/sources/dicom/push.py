"""C-STORE into a PACS (pynetdicom as the SCU): the push of `medark dicom restore
--to-pacs AET@host:port`.

Each instance is described before it is sent (name, SOP class, SOP instance UID,
transfer syntax) and read only when its turn comes, so a study of thousands of images
is never held in memory at once, and bytes read from the repository go straight into
the association (never to a file). One presentation context is proposed per distinct
(SOP class, transfer syntax) pair, in the file's own transfer syntax, so the peer gets
the data set as it was stored; an association carries at most 128 contexts (the
standard's limit on presentation context IDs), so larger mixes open more associations
one after the other.

Every instance's outcome is kept: success, warning or failure with the peer's status
code (PS3.4 B.2.3; PS3.7 C). A peer that cannot be reached or refuses the first
association raises PacsUnavailable (nothing was sent); a later association that fails
marks its instances failed and the push goes on with the next. An instance is read
before the association is checked, so one the peer closed while a slow read went on
(its idle timeout) is opened again and the instance sent on it.
"""

from __future__ import annotations

import io
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medark.errors import PacsUnavailable, UsageError

MAX_CONTEXTS = 128
"""Presentation contexts one association may propose (odd IDs 1..255)."""
DEFAULT_CALLING_AET = "MEDARK"
RECONNECTS = 3
"""Times one batch's association is opened again after the peer closed it."""
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_PORT = re.compile(r"^[0-9]{1,5}$")


def check_aet(title: str, what: str = "AE title") -> str:
    """A DICOM AE title: 1 to 16 characters of printable ASCII, no backslash, no leading
    or trailing space (PS3.5 6.2, AE)."""
    if not 1 <= len(title) <= 16:
        raise UsageError(f"{what} {title!r}: must be 1 to 16 characters")
    if title != title.strip(" "):
        raise UsageError(f"{what} {title!r}: no leading or trailing spaces")
    if any(not (0x20 <= ord(c) < 0x7F) or c == "\\" for c in title):
        raise UsageError(f"{what} {title!r}: printable ASCII only, no backslash")
    return title


@dataclass(frozen=True)
class PacsAddress:
    """A DICOM peer: its called AE title, host and port."""

    aet: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.aet}@{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> PacsAddress:
        """`AET@host:port` (an IPv6 host in brackets: `PACS@[::1]:104`), strictly."""
        form = "expected AET@host:port, e.g. ORTHANC@10.0.0.5:4242"
        aet, at, where = text.rpartition("@")
        if not at or not aet:
            raise UsageError(f"PACS address {text!r}: no AE title; {form}")
        host, colon, port_text = where.rpartition(":")
        if not colon or not host:
            raise UsageError(f"PACS address {text!r}: no host or port; {form}")
        if not _PORT.match(port_text) or not 1 <= int(port_text) <= 65535:
            raise UsageError(f"PACS address {text!r}: port must be 1 to 65535; {form}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise UsageError(f"PACS address {text!r}: {host!r} is not an IPv6 "
                                 f"address; {form}") from None
        elif not _HOSTNAME.match(host):
            raise UsageError(f"PACS address {text!r}: {host!r} is not a host name or "
                             f"address; {form}")
        return cls(check_aet(aet, "PACS AE title"), host, int(port_text))


@dataclass(frozen=True)
class Outgoing:
    """One instance to send; `read` gives its Part-10 bytes when its turn comes."""

    name: str
    """Where it comes from (a path in the snapshot, a file), for reports."""
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    read: Callable[[], bytes] = field(repr=False, compare=False)


def outgoing_file(path: str | Path) -> Outgoing:
    """An instance from a Part-10 file on disk (its file meta says what it is)."""
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_file_meta_info

    file = Path(path)
    try:
        meta = read_file_meta_info(file)
        sop_class = str(meta.MediaStorageSOPClassUID)
        sop_instance = str(meta.MediaStorageSOPInstanceUID)
        syntax = str(meta.TransferSyntaxUID)
    except (OSError, InvalidDicomError, AttributeError, ValueError) as exc:
        raise UsageError(f"{file}: not a DICOM Part-10 file with its file meta "
                         f"({_first_line(exc)})") from None
    return Outgoing(str(file), sop_class, sop_instance, syntax, file.read_bytes)


@dataclass(frozen=True)
class StoreResult:
    name: str
    sop_instance: str
    status: str
    """"success", "warning" or "failure"."""
    code: int | None = None
    """The peer's C-STORE status (None when no response came)."""
    message: str = ""

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "sop_instance_uid": self.sop_instance,
                "status": self.status,
                "status_code": None if self.code is None else f"0x{self.code:04X}",
                "message": self.message}


@dataclass
class PushSummary:
    peer: str
    calling_aet: str
    results: list[StoreResult] = field(default_factory=list)
    associations: int = 0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[StoreResult]:
        return [r for r in self.results if r.status == "failure"]

    def public(self) -> dict[str, Any]:
        return {"peer": self.peer, "calling_aet": self.calling_aet,
                "associations": self.associations, "instances": len(self.results),
                "stored": self.count("success"), "warnings": self.count("warning"),
                "failed": self.count("failure"),
                "results": [r.public() for r in self.results]}


@dataclass
class Timeouts:
    """Seconds: TCP connect, association negotiation, one C-STORE's response, and the
    silence after which an open association is given up."""

    connect: float = 15.0
    acse: float = 30.0
    dimse: float = 120.0
    network: float = 120.0


def batches(instances: Sequence[Outgoing],
            limit: int = MAX_CONTEXTS) -> list[tuple[list[tuple[str, str]], list[Outgoing]]]:
    """Instances grouped so that one association's proposed contexts stay within
    `limit`: (contexts, instances) per association, in first-seen order."""
    order: list[tuple[str, str]] = []
    by_pair: dict[tuple[str, str], list[Outgoing]] = {}
    for item in instances:
        pair = (item.sop_class, item.transfer_syntax)
        if pair not in by_pair:
            by_pair[pair] = []
            order.append(pair)
        by_pair[pair].append(item)
    out: list[tuple[list[tuple[str, str]], list[Outgoing]]] = []
    for start in range(0, len(order), limit):
        pairs = order[start:start + limit]
        out.append((pairs, [i for p in pairs for i in by_pair[p]]))
    return out


def push(instances: Iterable[Outgoing], peer: PacsAddress,
         calling_aet: str = DEFAULT_CALLING_AET, timeouts: Timeouts | None = None,
         on_result: Callable[[StoreResult], None] | None = None,
         contexts_per_association: int = MAX_CONTEXTS) -> PushSummary:
    """C-STORE every instance to `peer`; the summary holds each one's outcome."""
    check_aet(calling_aet, "calling AE title")
    timeouts = timeouts or Timeouts()
    summary = PushSummary(str(peer), calling_aet)
    limit = max(1, min(contexts_per_association, MAX_CONTEXTS))
    for contexts, items in batches(list(instances), limit):
        _push_batch(summary, peer, calling_aet, contexts, items, timeouts, on_result)
    return summary


def _push_batch(summary: PushSummary, peer: PacsAddress, calling_aet: str,
                contexts: list[tuple[str, str]], items: list[Outgoing], timeouts: Timeouts,
                on_result: Callable[[StoreResult], None] | None) -> None:
    """One association's instances. An association the peer closes between two of them
    (its idle timeout while a slow repository read went on) is opened again, up to
    RECONNECTS times, and the instance sent on the new one."""
    assoc: Any = None
    lost = 0
    try:
        for item in items:
            prepared = _prepare(item)
            if isinstance(prepared, StoreResult):
                _keep(summary, prepared, on_result)
                continue
            result: StoreResult | None = None
            while result is None:
                if assoc is None or not assoc.is_established:
                    if assoc is not None:
                        lost += 1
                    why = (f"the association was lost {lost} times" if lost > RECONNECTS
                           else None)
                    if why is None:
                        opened = _associate(peer, calling_aet, contexts, timeouts)
                        if isinstance(opened, str):
                            why = opened
                        else:
                            assoc = opened
                            summary.associations += 1
                    if why is not None:
                        if not summary.associations:
                            raise PacsUnavailable(f"DICOM peer {peer}: {why}")
                        result = StoreResult(item.name, item.sop_instance, "failure",
                                             None, why)
                        break
                result = _send(assoc, item, prepared)
            _keep(summary, result, on_result)
    finally:
        if assoc is not None and assoc.is_established:
            assoc.release()


def _keep(summary: PushSummary, result: StoreResult,
          on_result: Callable[[StoreResult], None] | None) -> None:
    summary.results.append(result)
    if on_result is not None:
        on_result(result)


def _associate(peer: PacsAddress, calling_aet: str, contexts: list[tuple[str, str]],
               timeouts: Timeouts) -> Any:
    """An established association, or why there is none (one line)."""
    from pynetdicom import AE

    unreachable = _unreachable(peer, timeouts)
    if unreachable is not None:
        return unreachable
    ae = AE(ae_title=calling_aet)
    ae.connection_timeout = timeouts.connect
    ae.acse_timeout = timeouts.acse
    ae.dimse_timeout = timeouts.dimse
    ae.network_timeout = timeouts.network
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, [syntax])
    for _attempt in range(3):
        started = time.monotonic()
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
        # A peer that rejects and closes at once can have its close read before its
        # rejection (seen with Orthanc under load): an abort well within the ACSE
        # timeout (pynetdicom aborts too when it expires) is asked again (twice at most),
        # to learn the reason.
        aborted_at_once = (assoc.is_aborted and not assoc.is_rejected
                           and time.monotonic() - started < timeouts.acse / 2)
        if not aborted_at_once:
            break
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        reason = rj.reason_str if rj is not None else "no reason given"
        kind = rj.result_str.lower().removeprefix("rejected").strip() if rj else ""
        return (f"association rejected{f' ({kind})' if kind else ''}: {reason}; check "
                f"the called AE title {peer.aet!r} and that the PACS accepts calling AE "
                f"title {calling_aet!r}")
    if assoc.rejected_contexts and not assoc.accepted_contexts:
        refused = sorted({str(c.abstract_syntax) for c in assoc.rejected_contexts})
        return (f"the PACS accepted none of the {len(contexts)} presentation context(s) "
                f"proposed (SOP classes {', '.join(refused[:5])}"
                f"{', …' if len(refused) > 5 else ''} in their stored transfer syntaxes)")
    if aborted_at_once:
        return (f"the peer aborted the association request; check the called AE title "
                f"{peer.aet!r} and that the PACS accepts calling AE title {calling_aet!r}")
    return f"the peer did not answer the association request within {timeouts.acse:g} s"


def _unreachable(peer: PacsAddress, timeouts: Timeouts) -> str | None:
    """Why a TCP connection to the peer cannot be made, or None when it can. Tried
    first with a socket of our own: pynetdicom 3.0 leaves the socket of a refused
    connection open, and says only that the association was aborted."""
    try:
        with socket.create_connection((peer.host, peer.port), timeout=timeouts.connect):
            return None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, socket.gaierror):
            reason = f"host not found ({reason})"
        elif isinstance(exc, TimeoutError):
            reason = f"no answer within {timeouts.connect:g} s"
        return f"cannot connect to {peer.host}:{peer.port}: {reason}"


def _prepare(item: Outgoing) -> Any:
    """The instance's data set read and checked against what was announced, or the
    failure that keeps it from being sent."""
    from pydicom import dcmread

    def failed(message: str) -> StoreResult:
        return StoreResult(item.name, item.sop_instance, "failure", None, message)

    try:
        data = item.read()
    except Exception as exc:  # a repository read (integrity, backend) or a file read
        return failed(f"not read: {_first_line(exc)}")
    try:
        dataset = dcmread(io.BytesIO(data))
        sop_class = str(dataset.get("SOPClassUID", ""))
        sop_instance = str(dataset.get("SOPInstanceUID", ""))
    except Exception as exc:  # pydicom raises many kinds on damaged input
        return failed(f"not a readable DICOM file: {_first_line(exc)}")
    if (sop_class, sop_instance) != (item.sop_class, item.sop_instance):
        return failed(f"its SOP class and instance UIDs ({sop_class or 'none'}, "
                      f"{sop_instance or 'none'}) are not the expected ones")
    return dataset


def _send(assoc: Any, item: Outgoing, dataset: Any) -> StoreResult | None:
    """The C-STORE's outcome; None when the association ended before it was sent."""
    from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

    def failed(message: str, code: int | None = None) -> StoreResult:
        return StoreResult(item.name, item.sop_instance, "failure", code, message)

    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_store(dataset)
    except (ValueError, AttributeError) as exc:
        return failed(f"not sent: {_first_line(exc)}")
    except RuntimeError:
        return None
    if "Status" not in status:
        if not assoc.is_established:
            # the association ended with the instance in flight (the peer closed it, or
            # no answer came in time and it was aborted): send it again on a new one,
            # as for one closed between two instances (a C-STORE of the same SOP
            # instance is idempotent at the peer)
            return None
        return failed("no response from the peer (DIMSE timeout or the association was "
                      "aborted)")
    code = int(status.Status)
    category = code_to_category(code)
    meaning = STORAGE_SERVICE_CLASS_STATUS.get(code, (category, ""))[1]
    comment = "; ".join(t for t in (meaning, str(status.get("ErrorComment", "") or ""))
                        if t)
    if category == "Success":
        return StoreResult(item.name, item.sop_instance, "success", code, comment)
    if category == "Warning":
        return StoreResult(item.name, item.sop_instance, "warning", code, comment)
    return failed(comment or f"refused by the peer ({category.lower()})", code)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
