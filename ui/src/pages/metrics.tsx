import { useState } from "react";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { registry, status } from "../api";
import { DeliveryBadge, ErrorBox, NeedProject, usePoll, useSession } from "../lib";
import { LatencyChart, StatusChart } from "./charts";

// The time windows offered, each with its bucket width.
const WINDOWS: { key: string; label: string; ms: number; bucketSeconds: number }[] = [
  { key: "1h", label: "Last hour", ms: 3600e3, bucketSeconds: 60 },
  { key: "24h", label: "Last 24 hours", ms: 24 * 3600e3, bucketSeconds: 3600 },
  { key: "7d", label: "Last 7 days", ms: 7 * 24 * 3600e3, bucketSeconds: 3600 },
];

// MetricsPage shows the project's deliveries per status now, and charts of
// deliveries per outcome status and of attempt latency over a window, for
// the project or one of its endpoints, from GetDeliveryStats (counters the
// status service keeps per minute). Both refresh while the page is open.
export function MetricsPage() {
  const { session } = useSession();
  const projectId = session.projectId;
  const [win, setWin] = useState(WINDOWS[0].key);
  const [endpointId, setEndpointId] = useState("");
  const w = WINDOWS.find((x) => x.key === win) ?? WINDOWS[0];
  const counts = usePoll(() => status.countDeliveries({ projectId, endpointId }), [projectId, endpointId], !!projectId);
  const endpoints = usePoll(() => registry.listEndpoints({ projectId, pageSize: 100 }), [projectId], !!projectId);
  const stats = usePoll(
    () =>
      status.getDeliveryStats({
        projectId,
        endpointId,
        startTime: timestampFromMs(Date.now() - w.ms),
        bucket: { seconds: BigInt(w.bucketSeconds), nanos: 0 },
      }),
    [projectId, endpointId, w.key],
    !!projectId,
  );
  if (!projectId) return <NeedProject />;
  const buckets = stats.data?.buckets ?? [];
  return (
    <div>
      <h1>Metrics</h1>
      <ErrorBox error={counts.error || stats.error || endpoints.error} testid="metrics-error" />
      <div className="filters">
        <label>
          Window
          <select value={win} onChange={(e) => setWin(e.target.value)} data-testid="metrics-window">
            {WINDOWS.map((x) => (
              <option key={x.key} value={x.key}>
                {x.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Endpoint
          <select value={endpointId} onChange={(e) => setEndpointId(e.target.value)} data-testid="metrics-endpoint">
            <option value="">All endpoints</option>
            {endpoints.data?.endpoints.map((ep) => (
              <option key={ep.id} value={ep.id}>
                {ep.name ? `${ep.name} (${ep.id})` : ep.id}
              </option>
            ))}
          </select>
        </label>
      </div>
      <div className="card" data-testid="metrics-charts">
        <h3>Deliveries per outcome</h3>
        {stats.data ? <StatusChart buckets={buckets} testid="chart-statuses" /> : <div className="muted">Loading…</div>}
      </div>
      <div className="card">
        <h3>Attempt latency</h3>
        {stats.data ? <LatencyChart buckets={buckets} testid="chart-latency" /> : <div className="muted">Loading…</div>}
      </div>
      <div className="card" data-testid="metrics-counts">
        <h3>Deliveries per status now</h3>
        <table>
          <tbody>
            {counts.data?.counts.map((c) => (
              <tr key={c.status}>
                <td>
                  <DeliveryBadge status={c.status} />
                </td>
                <td className="num">{String(c.count)}</td>
              </tr>
            ))}
            <tr>
              <td>
                <strong>total</strong>
              </td>
              <td className="num">{counts.data ? String(counts.data.total) : "…"}</td>
            </tr>
          </tbody>
        </table>
      </div>
    </div>
  );
}
