// Clients for hookmesh's public Connect APIs, spoken as JSON from the page's
// origin. The key lives in sessionStorage only: closing the tab signs out.
import { createClient, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { RegistryService, FilterSchema } from "./gen/hookmesh/registry/v1/registry_pb";
import { IngestService } from "./gen/hookmesh/ingest/v1/ingest_pb";
import { StatusService } from "./gen/hookmesh/status/v1/status_pb";
import { OperationsService } from "./gen/hookmesh/operations/v1/operations_pb";

const KEY = "hookmesh.key";
const PROJECT = "hookmesh.project";
const ADMIN = "hookmesh.admin";
const PORTAL_TOKEN = "hookmesh.portal.token";

// PORTAL says the page is the customer portal (/ui/portal…): it calls the
// APIs with the portal token, kept apart from a signed-in key.
export const PORTAL = /^\/ui\/portal(\/|$)/.test(window.location.pathname);

export interface Session {
  key: string;
  admin: boolean;
  projectId: string;
  // portal is set in portal mode: whose endpoints the token reaches, and
  // until when.
  portal?: { ownerId: string; expireTime?: Timestamp };
}

// takePortalToken moves the portal link's token from the address bar to
// the tab's session storage, so that it is not left in the history or
// shown on screen, and returns the token kept (or "").
export function takePortalToken(): string {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token) {
    sessionStorage.setItem(PORTAL_TOKEN, token);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(PORTAL_TOKEN) ?? "";
}

export function clearPortalToken() {
  sessionStorage.removeItem(PORTAL_TOKEN);
}

export function loadSession(): Session | null {
  const key = sessionStorage.getItem(KEY);
  if (!key) return null;
  return {
    key,
    admin: sessionStorage.getItem(ADMIN) === "1",
    projectId: sessionStorage.getItem(PROJECT) ?? "",
  };
}

export function saveSession(s: Session) {
  sessionStorage.setItem(KEY, s.key);
  sessionStorage.setItem(ADMIN, s.admin ? "1" : "0");
  sessionStorage.setItem(PROJECT, s.projectId);
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ADMIN);
  sessionStorage.removeItem(PROJECT);
}

const auth: Interceptor = (next) => async (req) => {
  const key = sessionStorage.getItem(PORTAL ? PORTAL_TOKEN : KEY);
  if (key) req.header.set("Authorization", `Bearer ${key}`);
  return next(req);
};

const transport = createConnectTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: false,
  interceptors: [auth],
  jsonOptions: { ignoreUnknownFields: true },
});

export const registry = createClient(RegistryService, transport);
export const ingest = createClient(IngestService, transport);
export const status = createClient(StatusService, transport);
export const operations = createClient(OperationsService, transport);

// A client that tries a key before it is saved.
export function clientsWithKey(key: string) {
  const t = createConnectTransport({
    baseUrl: window.location.origin,
    useBinaryFormat: false,
    interceptors: [
      (next) => async (req) => {
        req.header.set("Authorization", `Bearer ${key}`);
        return next(req);
      },
    ],
  });
  return { registry: createClient(RegistryService, t) };
}

export function errorText(e: unknown): string {
  if (e instanceof ConnectError) return `${codeName(e)}: ${e.rawMessage}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

function codeName(e: ConnectError): string {
  const names: Record<number, string> = {
    1: "canceled", 2: "unknown", 3: "invalid_argument", 4: "deadline_exceeded", 5: "not_found",
    6: "already_exists", 7: "permission_denied", 8: "resource_exhausted", 9: "failed_precondition",
    10: "aborted", 11: "out_of_range", 12: "unimplemented", 13: "internal", 14: "unavailable",
    15: "data_loss", 16: "unauthenticated",
  };
  return names[e.code] ?? `code ${e.code}`;
}

export function fmtTime(t?: Timestamp): string {
  if (!t) return "";
  return timestampDate(t).toLocaleString();
}

// The subscription filter's body and headers are JSON text fields (older
// APIs used google.protobuf.Struct); the descriptor says which this build
// speaks, so the editor works with both.
function filterFieldIsText(name: "body" | "headers"): boolean {
  const f = FilterSchema.fields.find((f) => f.localName === name);
  return f?.fieldKind === "scalar";
}

// filterFieldValue turns the editor's text into the request field. An
// empty text is no filter.
export function filterFieldValue(name: "body" | "headers", text: string): unknown {
  if (text.trim() === "") return undefined;
  if (filterFieldIsText(name)) return text;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`filter.${name}: not valid JSON: ${(e as Error).message}`);
  }
}

// filterFieldText shows a filter field as JSON text.
export function filterFieldText(v: unknown): string {
  if (v === undefined || v === null || v === "") return "";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}
