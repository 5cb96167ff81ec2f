import { useState, type FormEvent } from "react";
import { ingest, errorText, fmtTime } from "../api";
import type { EventSummary } from "../gen/hookmesh/status/v1/status_pb";
import { DeliveryBadge, ErrorBox, Headers, Json, Link, NeedProject, Pager, tsFromInput, useCursor, usePoll, useSession } from "../lib";
import { DeliveriesTable } from "./deliveries";

function Summary(props: { summary?: EventSummary }) {
  const s = props.summary;
  if (!s) return <span className="muted">—</span>;
  if (s.counts.length === 0) return <span className="muted">no deliveries</span>;
  return (
    <span className="counts">
      {s.counts.map((c) => (
        <span key={c.status}>
          <DeliveryBadge status={c.status} /> {String(c.count)}
        </span>
      ))}
    </span>
  );
}

export function EventsPage() {
  const { session } = useSession();
  const projectId = session.projectId;
  const [eventType, setEventType] = useState("");
  const [endpointId, setEndpointId] = useState("");
  const [ownerId, setOwnerId] = useState("");
  const [idempotencyKey, setIdempotencyKey] = useState("");
  const [start, setStart] = useState("");
  const [end, setEnd] = useState("");
  const [duplicate, setDuplicate] = useState("any");
  const [pageSize, setPageSize] = useState("25");
  const filterKey = JSON.stringify([eventType, endpointId, ownerId, idempotencyKey, start, end, duplicate, pageSize]);
  const cursor = useCursor([filterKey, projectId]);
  const list = usePoll(
    () =>
      ingest.listEvents({
        projectId,
        eventType,
        endpointId,
        ownerId,
        idempotencyKey,
        startTime: tsFromInput(start),
        endTime: tsFromInput(end),
        isDuplicate: duplicate === "any" ? undefined : duplicate === "yes",
        pageSize: Number(pageSize) || 0,
        pageToken: cursor.token,
      }),
    [projectId, filterKey, cursor.token],
    !!projectId,
  );
  const [sending, setSending] = useState(false);
  if (!projectId) return <NeedProject />;
  return (
    <div>
      <div className="title-row">
        <h1>Events</h1>
        <button className="primary" onClick={() => setSending(!sending)} data-testid="event-new">
          Send event
        </button>
      </div>
      {sending && <SendEvent projectId={projectId} onSent={list.reload} />}
      <div className="filters card">
        <label>
          Event type
          <input value={eventType} onChange={(e) => setEventType(e.target.value)} data-testid="events-type" />
        </label>
        <label>
          Endpoint ID
          <input value={endpointId} onChange={(e) => setEndpointId(e.target.value)} data-testid="events-endpoint" />
        </label>
        <label>
          Owner ID
          <input value={ownerId} onChange={(e) => setOwnerId(e.target.value)} />
        </label>
        <label>
          Idempotency key
          <input value={idempotencyKey} onChange={(e) => setIdempotencyKey(e.target.value)} />
        </label>
        <label>
          From
          <input type="datetime-local" value={start} onChange={(e) => setStart(e.target.value)} />
        </label>
        <label>
          Until
          <input type="datetime-local" value={end} onChange={(e) => setEnd(e.target.value)} />
        </label>
        <label>
          Duplicates
          <select value={duplicate} onChange={(e) => setDuplicate(e.target.value)}>
            <option value="any">all events</option>
            <option value="no">originals only</option>
            <option value="yes">duplicates only</option>
          </select>
        </label>
        <label>
          Page size
          <select value={pageSize} onChange={(e) => setPageSize(e.target.value)}>
            <option>10</option>
            <option>25</option>
            <option>50</option>
            <option>100</option>
          </select>
        </label>
      </div>
      <ErrorBox error={list.error} testid="events-error" />
      <table data-testid="events-table">
        <thead>
          <tr>
            <th>Event type</th>
            <th>ID</th>
            <th>Sent to</th>
            <th>Deliveries</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.events.map((ev) => (
            <tr key={ev.id} data-testid={`event-row-${ev.id}`}>
              <td>
                <Link to={`/events/${ev.id}`} testid={`event-link-${ev.id}`}>
                  {ev.eventType}
                </Link>
                {ev.isDuplicate && <span className="badge badge-dup">duplicate</span>}
              </td>
              <td className="mono">{ev.id}</td>
              <td className="mono">{ev.broadcast ? "broadcast" : ev.ownerId ? `owner ${ev.ownerId}` : ev.endpointId}</td>
              <td>
                <Summary summary={ev.deliveries} />
              </td>
              <td>{fmtTime(ev.createTime)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && list.data.events.length === 0 && <div className="empty">No events.</div>}
      <Pager page={cursor.page} nextToken={list.data?.nextPageToken} onNext={cursor.next} onPrev={cursor.prev} testid="events-pager" />
    </div>
  );
}

export function EventPage(props: { id: string }) {
  const { session } = useSession();
  const projectId = session.projectId;
  const ev = usePoll(() => ingest.getEvent({ projectId, eventId: props.id }), [projectId, props.id], !!projectId);
  if (!projectId) return <NeedProject />;
  const e = ev.data?.event;
  return (
    <div>
      <div className="breadcrumb">
        <Link to="/events">Events</Link> / <span className="mono">{props.id}</span>
      </div>
      <ErrorBox error={ev.error} />
      {e && (
        <>
          <h1 data-testid="event-title">{e.eventType}</h1>
          <div className="cards">
            <div className="card">
              <dl>
                <dt>ID</dt>
                <dd className="mono">{e.id}</dd>
                <dt>Sent to</dt>
                <dd className="mono">
                  {e.broadcast ? "every endpoint (broadcast)" : e.ownerId ? `endpoints of owner ${e.ownerId}` : <Link to={`/endpoints/${e.endpointId}`}>{e.endpointId}</Link>}
                </dd>
                <dt>Idempotency key</dt>
                <dd className="mono">{e.idempotencyKey || "—"}</dd>
                <dt>Duplicate</dt>
                <dd>{e.isDuplicate ? <Link to={`/events/${e.duplicateOf}`}>of {e.duplicateOf}</Link> : "no"}</dd>
                <dt>Created</dt>
                <dd>{fmtTime(e.createTime)}</dd>
                <dt>Deliveries</dt>
                <dd>
                  <Summary summary={e.deliveries} />
                </dd>
              </dl>
              <h4>Custom headers</h4>
              <Headers headers={e.customHeaders} />
            </div>
            <div className="card">
              <h4>Data</h4>
              <Json text={e.data} testid="event-data" />
            </div>
          </div>
          <h2>Deliveries</h2>
          <DeliveriesTable projectId={projectId} filter={{ eventId: e.id }} testid="event-deliveries" requestBody={e.data} />
        </>
      )}
    </div>
  );
}

// SendEvent sends an event to one endpoint, to an owner's endpoints, or to
// every endpoint of the project.
function SendEvent(props: { projectId: string; onSent: () => void }) {
  const [target, setTarget] = useState("endpoint");
  const [to, setTo] = useState("");
  const [eventType, setEventType] = useState("");
  const [data, setData] = useState("{}");
  const [idempotencyKey, setIdempotencyKey] = useState("");
  const [error, setError] = useState("");
  const [sent, setSent] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError("");
    setSent("");
    try {
      const common = { projectId: props.projectId, eventType, data, idempotencyKey };
      const resp =
        target === "endpoint"
          ? await ingest.createEvent({ ...common, endpointId: to })
          : target === "owner"
            ? await ingest.createFanoutEvent({ ...common, ownerId: to })
            : await ingest.createBroadcastEvent(common);
      setSent(resp.event?.id ?? "");
      props.onSent();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="card grid-form" onSubmit={submit} data-testid="event-form">
      <label>
        Send to
        <select value={target} onChange={(e) => setTarget(e.target.value)}>
          <option value="endpoint">one endpoint</option>
          <option value="owner">an owner's endpoints (fan-out)</option>
          <option value="broadcast">every endpoint (broadcast)</option>
        </select>
      </label>
      {target !== "broadcast" && (
        <label>
          {target === "endpoint" ? "Endpoint ID" : "Owner ID"}
          <input value={to} onChange={(e) => setTo(e.target.value)} />
        </label>
      )}
      <label>
        Event type
        <input value={eventType} onChange={(e) => setEventType(e.target.value)} placeholder="invoice.paid" />
      </label>
      <label>
        Idempotency key <span className="muted">(optional)</span>
        <input value={idempotencyKey} onChange={(e) => setIdempotencyKey(e.target.value)} />
      </label>
      <label>
        Data <span className="muted">(JSON, delivered byte for byte)</span>
        <textarea className="mono" rows={4} value={data} onChange={(e) => setData(e.target.value)} />
      </label>
      <ErrorBox error={error} />
      {sent && (
        <div className="ok">
          Sent <Link to={`/events/${sent}`}>{sent}</Link>.
        </div>
      )}
      <div className="form-actions">
        <button type="submit" className="primary">
          Send
        </button>
      </div>
    </form>
  );
}
