import { status } from "../api";
import { DeliveryBadge, ErrorBox, NeedProject, usePoll, useSession } from "../lib";

// MetricsPage shows the project's deliveries per status now. The charts of
// deliveries per status over time and of attempt latency, for the project
// and for one endpoint, belong here once the status service aggregates
// them.
export function MetricsPage() {
  const { session } = useSession();
  const projectId = session.projectId;
  const counts = usePoll(() => status.countDeliveries({ projectId }), [projectId], !!projectId);
  if (!projectId) return <NeedProject />;
  return (
    <div>
      <h1>Metrics</h1>
      <ErrorBox error={counts.error} />
      <div className="card" data-testid="metrics-counts">
        <h3>Deliveries per status</h3>
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
      <div className="card muted" data-testid="metrics-charts">
        Charts of deliveries per status over time and of attempt latency will appear here.
      </div>
    </div>
  );
}
