// The review page: only the public API (/v1), the token from this tab's session storage in an Authorization header.
"use strict";
const jobId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const KEY = "reelforge-token";
const $ = (id) => document.getElementById(id);
let job = null, links = null, lastEvent = 0, following = false;
class Refused extends Error {}  // this token cannot see this job (refused, or not its job): ask for another one

function headers(extra = {}) {
  const token = sessionStorage.getItem(KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function api(path, options = {}) {
  const answer = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}${path}`, { ...options, headers: headers(options.headers) });
  if (answer.status === 401) { sessionStorage.removeItem(KEY); throw new Refused("That token was refused."); }
  if (answer.status === 404) {  // another owner's job answers exactly as a job that does not exist
    sessionStorage.removeItem(KEY); throw new Refused(`Job ${jobId} not found for this token.`);
  }
  if (!answer.ok) { const body = await answer.json().catch(() => ({})); throw new Error(body.message || answer.statusText); }
  return answer;
}

function showLogin(message) {
  $("review").hidden = true; $("login").hidden = false;
  $("status").textContent = message || "Enter an API token to review this job.";
}

// Progress: each segment's stage counts for its step (queued 0 ... delivered 4), and the film for one step more.
const STEPS = { queued: 0, generated: 1, encoded: 2, checked: 3, delivered: 4, failed: 0 };

function setStatus() {
  const segments = Object.values(job.segments);
  const done = segments.filter((s) => s.stage === "delivered").length;
  $("status").textContent = `${job.status} · ${done} of ${job.segment_count} segments delivered` +
    (job.films && Object.keys(job.films).length ? ` · film version ${Math.max(...Object.keys(job.films).map(Number))}` : "");
  $("progress").max = 4 * job.segment_count + 1;
  $("progress").value = segments.reduce((sum, s) => sum + (STEPS[s.stage] || 0), 0) + (job.status === "completed" ? 1 : 0);
  for (const [n, seg] of Object.entries(job.segments)) {
    const stage = document.querySelector(`#segments .card[data-index="${Number(n)}"] .stage`);
    if (stage) stage.textContent = stageText(seg);
  }
}

function stageText(seg) {
  return `${seg.stage}, attempt ${seg.attempt}` + (seg.qa_passed === false ? " · QA flagged" : "");
}

function player() {
  const versions = Object.keys(links.films).map(Number).sort((a, b) => b - a);
  const select = $("versions");
  const chosen = Number(select.value) || versions[0];
  select.replaceChildren(...versions.map((v) => new Option(`v${v}`, v, false, v === versions[0])));
  if (versions.length && $("player").dataset.version !== String(versions[0])) {
    $("player").src = links.films[versions[0]]; $("player").dataset.version = String(versions[0]);
  } else if (chosen) { select.value = String(chosen); }
  const nav = $("downloads");
  nav.replaceChildren();
  const add = (label, href, onclick) => {
    const a = document.createElement("a"); a.textContent = label; a.href = href || "#";
    if (onclick) a.addEventListener("click", (e) => { e.preventDefault(); onclick(); }); else a.download = "";
    nav.append(a);
  };
  if (versions.length) add("film", links.films[versions[0]]);
  for (const [name, url] of Object.entries(links.deliverables)) add(name, url);
  for (const fmt of ["otio", "fcpxml", "fcp7xml", "edl", "kdenlive"]) add(fmt, null, () => save(`/timeline?format=${fmt}`, `${jobId}.${fmt}`));
  add("bundle", null, () => save("/bundle", `${jobId}-bundle.zip`));
}

async function save(path, name) {  // a download that needs the token: fetched with it, handed over as a blob
  const blob = await (await api(path)).blob();
  const a = document.createElement("a"); a.href = URL.createObjectURL(blob); a.download = name; a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function cards() {
  const root = $("segments");
  root.replaceChildren();
  for (const [n, seg] of Object.entries(job.segments).sort((a, b) => a[0] - b[0])) {
    const card = $("card").content.firstElementChild.cloneNode(true);
    card.dataset.index = n;
    const media = links.segments[n] || {};
    if (media.thumbnail) card.querySelector(".thumb").src = media.thumbnail;
    card.querySelector(".thumb").alt = `segment ${n} ${seg.id}`;
    card.querySelector("h2").textContent = `${n} · ${seg.id}`;
    card.querySelector(".prompt").textContent = (seg.spec && seg.spec.prompt) || "";
    card.querySelector(".stage").textContent = stageText(seg);
    const table = card.querySelector(".scores");
    for (const [gate, score] of Object.entries(seg.qa_scores || {})) {
      const row = table.insertRow(); row.insertCell().textContent = gate; row.insertCell().textContent = score.toFixed(3);
      if ((seg.qa_failed_gates || []).includes(gate)) row.className = "failed";
    }
    card.querySelector(".findings").textContent = (seg.qa_failed_gates || []).length ? `failed: ${seg.qa_failed_gates.join(", ")}` : "";
    const renders = card.querySelector(".renders");
    const play = (label, url) => { const b = document.createElement("button"); b.type = "button"; b.textContent = label;
      b.addEventListener("click", () => { $("player").src = url; $("player").dataset.version = ""; $("player").play().catch(() => {}); }); renders.append(b); };
    if (media.video) play(`play attempt ${seg.attempt}`, media.video);
    for (const earlier of media.attempts || []) play(`play attempt ${earlier.attempt}`, earlier.url);
    // Takes rendered side by side (takes: N, variants): any checked take not in the film can be put in (a new version).
    for (const [k, take] of Object.entries(seg.takes || {}).sort((a, b) => a[0] - b[0])) {
      if (take.won || take.qa_passed === null || take.qa_passed === undefined) continue;
      const b = document.createElement("button"); b.type = "button"; b.className = "select-take";
      b.textContent = `use take ${k}`; b.title = take.reason || "";
      b.addEventListener("click", () => selectTake(n, k)); renders.append(b);
    }
    card.querySelector(".rerender").addEventListener("submit", (e) => rerender(e, n));
    root.append(card);
  }
}

async function rerender(event, n) {
  event.preventDefault();
  const form = event.target, body = {};
  if (form.prompt.value.trim()) body.prompt = form.prompt.value.trim();
  if (form.seed.value !== "") body.seed = Number(form.seed.value);
  if (!Object.keys(body).length) { $("status").textContent = "Give a new prompt or seed."; return; }
  try {
    job = await (await api(`/segments/${n}/rerender`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).json();
    setStatus(); follow();
  } catch (error) { $("status").textContent = `Re-render refused: ${error.message}`; }
}

async function selectTake(n, k) {
  try {
    job = await (await api(`/segments/${n}/takes/${k}/select`, { method: "POST" })).json();
    setStatus(); follow();
  } catch (error) { $("status").textContent = `Take refused: ${error.message}`; }
}

async function follow() {  // the job's SSE stream, read with fetch (EventSource cannot send the token)
  if (following) return;
  following = true;
  let pause = 0;
  try {
    const answer = await api("/events", { headers: { "Last-Event-ID": String(lastEvent) } });
    const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", held = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      // Server-sent events end their lines with CRLF, LF or CR (sse-starlette sends CRLF): all made LF before
      // splitting; a CR that ends a chunk waits for the next one, which may start with its LF.
      const text = held + value;
      held = text.endsWith("\r") ? "\r" : "";
      buffer += text.slice(0, text.length - held.length).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        const id = block.split("\n").find((l) => l.startsWith("id:"));
        if (id) lastEvent = Number(id.slice(3));
        if (!data) continue;
        const change = JSON.parse(data);
        const seg = change.index && job.segments[change.index];
        if (seg && change.stage) seg.stage = change.stage;
        if (seg && ["encoded", "checked", "delivered"].includes(change.stage)) stillsSoon();
        job.status = change.status || job.status;
        setStatus();
      }
    }
  } catch (error) {
    if (error instanceof Refused) { following = false; showLogin(error.message); return; }
    // Refused for now (too many open streams: 429) or cut off: say so and try again after a pause, not at once.
    $("status").textContent = `Progress stream interrupted (${error.message}); trying again in a few seconds.`;
    pause = 3000;
  } finally { following = false; }
  await new Promise((resume) => setTimeout(resume, pause));
  await load();
}

let stillsTimer = null;
function stillsSoon() {  // a segment encoded while the page watches: its still, without rebuilding the cards
  if (stillsTimer === null) stillsTimer = setTimeout(() => { stillsTimer = null; stills().catch(() => {}); }, 300);
}

async function stills() {
  links = await (await api("/media")).json();
  for (const [n, media] of Object.entries(links.segments)) {
    const img = document.querySelector(`#segments .card[data-index="${Number(n)}"] .thumb`);
    if (img && media.thumbnail && !img.getAttribute("src")) img.src = media.thumbnail;
  }
}

async function load() {
  job = await (await api("")).json();
  lastEvent = job.last_event_id;
  links = await (await api("/media")).json();
  document.title = `${job.title || jobId} · review`;
  $("title").textContent = job.title || jobId;
  $("login").hidden = true; $("review").hidden = false;
  setStatus(); player(); cards();
  if (!["completed", "failed", "cancelled"].includes(job.status)) follow();
}

$("versions").addEventListener("change", (e) => { $("player").src = links.films[e.target.value]; $("player").dataset.version = e.target.value; });
function start() {
  load().catch((error) => showLogin(error instanceof Refused ? error.message : `Could not load the job: ${error.message}`));
}
$("login").addEventListener("submit", (e) => { e.preventDefault(); sessionStorage.setItem(KEY, $("token").value); start(); });
if (sessionStorage.getItem(KEY)) start(); else showLogin();
