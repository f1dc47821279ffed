#!/usr/bin/env node
// Read iCalendar objects with ical.js (Mozilla's parser, the one in Thunderbird; pinned in
// tests/package.json) and print what tests/test_ics.py compares against Python's icalendar.
//
// Input on stdin: JSON lines, one calendar each, so one node process reads many calendars. A line
// is a JSON string holding one whole VCALENDAR (CRLF and all), or {"ics": that string, "probe":
// ["YYYY-MM-DDTHH:MM:SS", ...]} to also get the UTC offset (seconds) ical.js gives each of those
// wall-clock times in the event's zone. Output on stdout: one JSON object a
// line, in order:
//   {method, version, prodid, vtimezones, uid, sequence, status, dtstamp, summary, description,
//    location, url, organizer: {value, params}, attendees: [{value, params}],
//    start: {local, tzid, zone, utc}, end: {local, tzid, zone, utc}, offsets?}
// or {error} when ical.js refused the calendar. Start and end are resolved through the calendar's
// own VTIMEZONE, registered with ICAL.TimezoneService (ical.js knows no zones but UTC), so this
// checks that the VTIMEZONE Herald wrote means what zoneinfo means.

import { createInterface } from "node:readline";
import ICAL from "ical.js";

function when(property) {
  const time = property.getFirstValue();
  const zone = time.zone;
  return {
    local: time.toString(),
    tzid: property.getParameter("tzid") ?? null,
    zone: zone ? zone.tzid : null,
    utc: new Date(time.toUnixTime() * 1000).toISOString().replace(".000Z", "Z"),
  };
}

function party(property) {
  if (!property) return null;
  const params = {};
  for (const name of ["cn", "role", "partstat", "rsvp"]) {
    const value = property.getParameter(name);
    if (value !== undefined && value !== null) params[name] = value;
  }
  return { value: property.getFirstValue(), params };
}

// The UTC offset ical.js gives each wall-clock time ("YYYY-MM-DDTHH:MM:SS") placed in `zone`.
function offsets(zone, probe) {
  return probe.map((local) => {
    const [year, month, day, hour, minute, second] = local.split(/[-T:]/).map(Number);
    return new ICAL.Time({ year, month, day, hour, minute, second, isDate: false }, zone).utcOffset();
  });
}

function read(text, probe) {
  const calendar = new ICAL.Component(ICAL.parse(text));
  ICAL.TimezoneService.reset();
  const zones = calendar.getAllSubcomponents("vtimezone");
  for (const zone of zones) ICAL.TimezoneService.register(zone);
  const events = calendar.getAllSubcomponents("vevent");
  if (events.length !== 1) throw new Error(`expected one VEVENT, found ${events.length}`);
  const event = events[0];
  const value = (name) => event.getFirstPropertyValue(name);
  const dtstamp = event.getFirstProperty("dtstamp");
  return {
    method: calendar.getFirstPropertyValue("method"),
    version: calendar.getFirstPropertyValue("version"),
    prodid: calendar.getFirstPropertyValue("prodid"),
    vtimezones: zones.map((zone) => ({
      tzid: zone.getFirstPropertyValue("tzid"),
      standard: zone.getAllSubcomponents("standard").length,
      daylight: zone.getAllSubcomponents("daylight").length,
    })),
    uid: value("uid"),
    sequence: value("sequence"),
    status: value("status"),
    dtstamp: dtstamp ? dtstamp.getFirstValue().toString() : null,
    summary: value("summary"),
    description: value("description"),
    location: value("location"),
    url: value("url"),
    organizer: party(event.getFirstProperty("organizer")),
    attendees: event.getAllProperties("attendee").map(party),
    start: when(event.getFirstProperty("dtstart")),
    end: when(event.getFirstProperty("dtend")),
    ...(probe ? { offsets: offsets(ICAL.TimezoneService.get(zones[0].getFirstPropertyValue("tzid")), probe) } : {}),
  };
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let result;
  try {
    const input = JSON.parse(line);
    result = typeof input === "string" ? read(input) : read(input.ics, input.probe);
  } catch (error) {
    result = { error: String(error?.stack ?? error) };
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}
