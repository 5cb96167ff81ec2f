import { Fragment, useState } from "react";
import { status, errorText, fmtTime } from "../api";
import { DeliveryStatus, type Delivery } from "../gen/hookmesh/status/v1/status_pb";
import { DeliveryBadge, ErrorBox, Headers, Json, Link, NeedProject, Pager, tsFromInput, useCursor, usePoll, useSession } from "../lib";

const ALL_STATUSES = [
  DeliveryStatus.WAITING,
  DeliveryStatus.SCHEDULED,
  DeliveryStatus.PROCESSING,
  DeliveryStatus.SUCCESS,
  DeliveryStatus.RETRY,
  DeliveryStatus.FAILED,
  DeliveryStatus.DISCARDED,
];

export interface DeliveryFilter {
  eventId?: string;
  endpointId?: string;
  eventType?: string;
  statuses?: DeliveryStatus[];
  start?: string;
  end?: string;
}

// DeliveriesTable lists deliveries matching a filter, newest first, a page
// at a time, refreshed while open. Each row can retry and show its attempts.
export function DeliveriesTable(props: { projectId: string; filter: DeliveryFilter; testid: string; requestBody?: string }) {
  const f = props.filter;
  const key = JSON.stringify(f);
  const cursor = useCursor([key, props.projectId]);
  const list = usePoll(
    () =>
      status.listDeliveries({
        projectId: props.projectId,
        eventId: f.eventId ?? "",
        endpointId: f.endpointId ?? "",
        eventType: f.eventType ?? "",
        statuses: f.statuses ?? [],
        startTime: tsFromInput(f.start ?? ""),
        endTime: tsFromInput(f.end ?? ""),
        pageSize: 25,
        pageToken: cursor.token,
      }),
    [props.projectId, key, cursor.token],
  );
  const [open, setOpen] = useState<Record<string, boolean>>({});
  const [error, setError] = useState("");
  // The portal has no event pages.
  const portal = !!useSession().session.portal;
  const retry = async (d: Delivery, force: boolean) => {
    setError("");
    try {
      if (force) await status.forceRetryDelivery({ projectId: props.projectId, deliveryId: d.id });
      else await status.retryDelivery({ projectId: props.projectId, deliveryId: d.id });
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <div data-testid={props.testid}>
      <ErrorBox error={error || list.error} testid={`${props.testid}-error`} />
      <table>
        <thead>
          <tr>
            <th>Status</th>
            <th>Event type</th>
            <th>Endpoint</th>
            <th>Attempts</th>
            <th>Last response</th>
            <th>Next attempt</th>
            <th>Updated</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {list.data?.deliveries.map((d) => (
            <Fragment key={d.id}>
              <tr data-testid={`delivery-row-${d.id}`}>
                <td>
                  <DeliveryBadge status={d.status} testid={`delivery-status-${d.id}`} />
                  {d.orderingKey && (
                    <div className="muted" data-testid={`delivery-key-${d.id}`} title="ordering key: sent after the earlier events with this key to this endpoint have ended">
                      key <span className="mono">{d.orderingKey}</span>
                      {d.status === DeliveryStatus.WAITING && " · waiting for an earlier event"}
                    </div>
                  )}
                </td>
                <td>{portal ? d.eventType : <Link to={`/events/${d.eventId}`}>{d.eventType}</Link>}</td>
                <td className="mono">
                  <Link to={`/endpoints/${d.endpointId}`}>{d.endpointId}</Link>
                </td>
                <td>{d.attempts}</td>
                <td>
                  {d.lastStatusCode ? <span className="mono">{d.lastStatusCode}</span> : null} {d.lastError && <span className="muted">{d.lastError}</span>}
                </td>
                <td>{fmtTime(d.nextAttemptTime)}</td>
                <td>{fmtTime(d.updateTime)}</td>
                <td>
                  <div className="actions">
                  <button onClick={() => setOpen((o) => ({ ...o, [d.id]: !o[d.id] }))} data-testid={`delivery-attempts-${d.id}`}>
                    {open[d.id] ? "Hide attempts" : "Attempts"}
                  </button>
                  {(d.status === DeliveryStatus.FAILED || d.status === DeliveryStatus.DISCARDED) && (
                    <button className="primary" onClick={() => retry(d, false)} data-testid={`delivery-retry-${d.id}`}>
                      Retry
                    </button>
                  )}
                  {d.status === DeliveryStatus.SUCCESS && (
                    <button onClick={() => retry(d, true)} data-testid={`delivery-force-${d.id}`}>
                      Force retry
                    </button>
                  )}
                  </div>
                </td>
              </tr>
              {open[d.id] && (
                <tr className="attempts-row">
                  <td colSpan={8}>
                    <Attempts projectId={props.projectId} deliveryId={d.id} requestBody={props.requestBody} />
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>
      {list.data && list.data.deliveries.length === 0 && <div className="empty">No deliveries.</div>}
      <Pager page={cursor.page} nextToken={list.data?.nextPageToken} onNext={cursor.next} onPrev={cursor.prev} testid={`${props.testid}-pager`} />
    </div>
  );
}

function Attempts(props: { projectId: string; deliveryId: string; requestBody?: string }) {
  const list = usePoll(() => status.listAttempts({ projectId: props.projectId, deliveryId: props.deliveryId }), [props.projectId, props.deliveryId]);
  return (
    <div className="attempts" data-testid={`attempts-${props.deliveryId}`}>
      <ErrorBox error={list.error} />
      {list.data && list.data.attempts.length === 0 && <div className="muted">No attempt yet.</div>}
      {list.data?.attempts.map((a) => (
        <div className="attempt card" key={a.attempt} data-testid={`attempt-${props.deliveryId}-${a.attempt}`}>
          <div className="attempt-head">
            <strong>Attempt {a.attempt}</strong>
            <span className={`code code-${a.statusCode >= 200 && a.statusCode < 300 ? "ok" : "bad"}`} data-testid={`attempt-status-${props.deliveryId}-${a.attempt}`}>
              {a.statusCode ? `HTTP ${a.statusCode}` : "no response"}
            </span>
            <span>{a.latencyMs} ms</span>
            <span className="mono">{a.remoteIp || "—"}</span>
            <span>{fmtTime(a.startTime)}</span>
          </div>
          {a.url && <div className="mono muted">POST {a.url}</div>}
          {a.error && <div className="error">{a.error}</div>}
          <div className="two-col">
            <div>
              <h4>Request headers</h4>
              <Headers headers={a.requestHeaders} />
              {props.requestBody !== undefined && (
                <>
                  <h4>Request body</h4>
                  <Json text={props.requestBody} />
                </>
              )}
            </div>
            <div>
              <h4>Response headers</h4>
              <Headers headers={a.responseHeaders} />
              <h4>Response body</h4>
              <Json text={a.responseBody} testid={`attempt-body-${props.deliveryId}-${a.attempt}`} />
            </div>
          </div>
        </div>
      ))}
    </div>
  );
}

export function DeliveriesPage() {
  const { session } = useSession();
  const projectId = session.projectId;
  const [endpointId, setEndpointId] = useState("");
  const [eventType, setEventType] = useState("");
  const [statuses, setStatuses] = useState<DeliveryStatus[]>([]);
  const [start, setStart] = useState("");
  const [end, setEnd] = useState("");
  if (!projectId) return <NeedProject />;
  const filter: DeliveryFilter = { endpointId, eventType, statuses, start, end };
  const toggle = (s: DeliveryStatus) => setStatuses((ss) => (ss.includes(s) ? ss.filter((x) => x !== s) : [...ss, s]));
  return (
    <div>
      <h1>Deliveries</h1>
      <div className="filters card">
        <label>
          Endpoint ID
          <input value={endpointId} onChange={(e) => setEndpointId(e.target.value)} data-testid="deliveries-endpoint" />
        </label>
        <label>
          Event type
          <input value={eventType} onChange={(e) => setEventType(e.target.value)} />
        </label>
        <label>
          From
          <input type="datetime-local" value={start} onChange={(e) => setStart(e.target.value)} />
        </label>
        <label>
          Until
          <input type="datetime-local" value={end} onChange={(e) => setEnd(e.target.value)} />
        </label>
        <div className="statuses">
          {ALL_STATUSES.map((s) => (
            <label key={s} className="check">
              <input type="checkbox" checked={statuses.includes(s)} onChange={() => toggle(s)} data-testid={`deliveries-status-${DeliveryStatus[s]}`} />
              {DeliveryStatus[s]}
            </label>
          ))}
        </div>
      </div>
      <BatchRetry key={JSON.stringify(filter)} projectId={projectId} filter={filter} />
      <DeliveriesTable projectId={projectId} filter={filter} testid="deliveries" />
    </div>
  );
}

// BatchRetry retries every delivery matching the page's filter: a dry run
// first says how many would go, then the user confirms.
function BatchRetry(props: { projectId: string; filter: DeliveryFilter }) {
  const [counted, setCounted] = useState<string | null>(null);
  const [result, setResult] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const f = props.filter;
  const req = (dryRun: boolean) => ({
    projectId: props.projectId,
    endpointId: f.endpointId ?? "",
    eventType: f.eventType ?? "",
    statuses: f.statuses ?? [],
    startTime: tsFromInput(f.start ?? ""),
    endTime: tsFromInput(f.end ?? ""),
    dryRun,
  });
  const dryRun = async () => {
    setError("");
    setResult("");
    setBusy(true);
    try {
      const resp = await status.batchRetryDeliveries(req(true));
      // Newer APIs say how many matched on a dry run; older ones put it in queued.
      const matched = (resp as unknown as { matched?: bigint }).matched;
      setCounted(String(matched !== undefined && matched !== 0n ? matched : resp.queued));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const confirm = async () => {
    setError("");
    setBusy(true);
    try {
      const resp = await status.batchRetryDeliveries(req(false));
      setResult(`${resp.queued} deliveries queued for retry.`);
      setCounted(null);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="card batch" data-testid="batch-retry">
      <strong>Batch retry</strong> <span className="muted">every delivery matching the filters above</span>
      {counted === null ? (
        <button onClick={dryRun} disabled={busy} data-testid="batch-dry-run">
          Dry run
        </button>
      ) : (
        <>
          <span data-testid="batch-count">{counted} deliveries would be retried.</span>
          <button className="primary" onClick={confirm} disabled={busy || counted === "0"} data-testid="batch-confirm">
            Retry {counted}
          </button>
          <button onClick={() => setCounted(null)}>Cancel</button>
        </>
      )}
      {result && <span data-testid="batch-result">{result}</span>}
      <ErrorBox error={error} testid="batch-error" />
    </div>
  );
}
