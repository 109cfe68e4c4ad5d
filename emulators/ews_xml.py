"""SOAP plumbing shared by the EWS emulator's operations: namespaces, element helpers,
the response envelope and request-level faults."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from emulators.ews_time import SerializableTimeZone

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
for _prefix, _ns in (("s", S), ("m", M), ("t", T), ("e", E)):
    ET.register_namespace(_prefix, _ns)


class SoapFault(Exception):
    """A request-level EWS error: a SOAP fault with the response code in its detail."""

    def __init__(self, code: str, message: str, back_off_ms: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.back_off_ms = code, message, back_off_ms


def t(tag: str) -> str:
    return f"{{{T}}}{tag}"


def m(tag: str) -> str:
    return f"{{{M}}}{tag}"


def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def text(elem: ET.Element | None, path: str) -> str | None:
    if elem is None:
        return None
    found = elem.find(path, {"t": T, "m": M})
    return found.text if found is not None else None


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None, zone: SerializableTimeZone | None = None) -> datetime:
    if not value:
        raise SoapFault("ErrorSchemaValidation", "A required date/time value is missing.")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        # Naive times are local to the request's time zone (UTC when none is given).
        return zone.to_utc(parsed) if zone else parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def message(parent: ET.Element, tag: str, code: str = "NoError", text: str = "") -> ET.Element:
    """A ResponseMessage; errors carry MessageText and DescriptiveLinkKey.
    https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsecode"""
    ok = code == "NoError"
    msg = sub(parent, m(tag), ResponseClass="Success" if ok else "Error")
    if not ok:
        sub(msg, m("MessageText"), text)
    sub(msg, m("ResponseCode"), code)
    if not ok:
        sub(msg, m("DescriptiveLinkKey"), "0")
    return msg


def children(elem: ET.Element | None) -> list[ET.Element]:
    return list(elem) if elem is not None else []


def element(tag: str, text: str) -> ET.Element:
    elem = ET.Element(tag)
    elem.text = text
    return elem


def envelope(requested_version: str) -> tuple[ET.Element, ET.Element]:
    """The response envelope with the ServerVersionInfo header exchangelib reads.
    https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/serverversioninfo"""
    env = ET.Element(f"{{{S}}}Envelope")
    header = sub(env, f"{{{S}}}Header")
    sub(
        header,
        t("ServerVersionInfo"),
        MajorVersion="15",
        MinorVersion="1",
        MajorBuildNumber="2507",
        MinorBuildNumber="6",
        Version=requested_version,
    )
    return env, sub(env, f"{{{S}}}Body")


def fault_body(fault: SoapFault) -> bytes:
    """A SOAP fault with the EWS ResponseCode (and MessageXml for ErrorServerBusy's
    BackOffMilliseconds), answered with HTTP 500.
    https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange"""
    env = ET.Element(f"{{{S}}}Envelope")
    body = sub(env, f"{{{S}}}Body")
    elem = sub(body, f"{{{S}}}Fault")
    sub(elem, "faultcode", f"a:{fault.code}")
    sub(elem, "faultstring", fault.message)
    detail = sub(elem, "detail")
    sub(detail, f"{{{E}}}ResponseCode", fault.code)
    sub(detail, f"{{{E}}}Message", fault.message)
    if fault.back_off_ms is not None:
        xml = sub(detail, t("MessageXml"))
        sub(xml, t("Value"), str(fault.back_off_ms), Name="BackOffMilliseconds")
    return serialize(env)


def serialize(env: ET.Element) -> bytes:
    data: bytes = ET.tostring(env, encoding="utf-8", xml_declaration=True)
    return data
