// R1 CDS card preview: sends real CDS Hooks calls to this service and shows the cards as an EHR would.
// Everything the service returns is untrusted text: it reaches the page only through textContent and
// createElement, never innerHTML, and links only with an http(s) URL.
"use strict";

(function () {
  const OPTIONS = JSON.parse(document.getElementById("preview-options").textContent);
  const RANK = { critical: 0, warning: 1, info: 2 };
  const ORDER_HOOKS = new Set(["order-select", "order-sign"]);
  // While an AI review is pending the page calls again: soon at first (a GPU model answers in seconds),
  // then less and less often (a CPU model takes 8-12 minutes), and it gives up only after half an hour,
  // saying so and offering to go on.
  const REFRESH_FIRST_MS = 2000;
  const REFRESH_MAX_MS = 30000;
  const REFRESH_WINDOW_MS = 30 * 60 * 1000;
  const PREVIEW_HEADERS = { "Content-Type": "application/json", "X-R1CDS-Preview": "1" };

  const state = {
    drafts: [],
    bundleText: null,
    // The hook call the tester fired last, refreshed while its answer has a pending AI review card:
    // { body: its prepare request, entry: its Calls panel entry, refreshes, firedAt, windowStart, delay, timer }
    poll: null,
    generation: 0, // bumps on every manual fire, so a stale refresh never overwrites newer cards
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ------------------------------------------------------------------------------------ Markdown

  // Only absolute http(s) URLs become links: javascript:, data:, vbscript: and the like stay text.
  function safeUrl(raw) {
    if (typeof raw !== "string") return null;
    try {
      const url = new URL(raw.trim(), window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(href, label) {
    const safe = safeUrl(href);
    if (safe === null) {
      return el("span", { class: "unsafe-link", title: "link removed: only http and https links are shown" }, label);
    }
    return el("a", { href: safe, target: "_blank", rel: "noopener noreferrer" }, label);
  }

  const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(__[^_\n]+__)|(\[[^\]\n]+\]\([^)\s]+\))|(\*[^*\s][^*\n]*\*)|(<https?:\/\/[^>\s]+>)/g;

  function inline(text, parent) {
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
      const token = match[0];
      if (match[1]) parent.append(el("code", { text: token.slice(1, -1) }));
      else if (match[2] || match[3]) {
        const strong = el("strong");
        inline(token.slice(2, -2), strong);
        parent.append(strong);
      } else if (match[4]) {
        const close = token.indexOf("](");
        parent.append(link(token.slice(close + 2, -1), token.slice(1, close)));
      } else if (match[5]) {
        const em = el("em");
        inline(token.slice(1, -1), em);
        parent.append(em);
      } else if (match[6]) parent.append(link(token.slice(1, -1), token.slice(1, -1)));
      last = match.index + token.length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  // CommonMark's everyday subset: paragraphs, headings, bullet and numbered lists, fences, emphasis,
  // code spans and links. Raw HTML is not a construct here: it is shown as the text it is.
  function markdown(source) {
    const root = el("div", { class: "detail" });
    const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
    let paragraph = [];
    let list = null;
    const flush = () => {
      if (paragraph.length) {
        const p = el("p");
        paragraph.forEach((line, i) => {
          if (i) p.append(el("br"));
          inline(line, p);
        });
        root.append(p);
      }
      paragraph = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (/^\s*```/.test(line)) {
        flush();
        list = null;
        const code = [];
        for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) code.push(lines[i]);
        root.append(el("pre", {}, el("code", { text: code.join("\n") })));
        continue;
      }
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
      const numbered = /^\s*(\d{1,9})[.)]\s+(.*)$/.exec(line);
      if (!line.trim()) {
        flush();
        list = null;
      } else if (heading) {
        flush();
        list = null;
        const h = el("h" + Math.min(6, heading[1].length + 3));
        inline(heading[2], h);
        root.append(h);
      } else if (bullet || numbered) {
        flush();
        const tag = bullet ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = el(tag, numbered && numbered[1] !== "1" ? { start: numbered[1] } : {});
          root.append(list);
        }
        const item = el("li");
        inline(bullet ? bullet[1] : numbered[2], item);
        list.append(item);
      } else if (list && /^\s{2,}\S/.test(line)) {
        const item = list.lastElementChild;
        item.append(" ");
        inline(line.trim(), item);
      } else {
        list = null;
        paragraph.push(line);
      }
    }
    flush();
    return root;
  }

  // ---------------------------------------------------------------------------------------- API

  class CallError extends Error {}

  function diagnostics(body, status) {
    if (body && body.resourceType === "OperationOutcome" && Array.isArray(body.issue) && body.issue.length) {
      return body.issue.map((i) => i.diagnostics || i.code).join("; ");
    }
    return "HTTP " + status;
  }

  async function readJson(response) {
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (e) {
      return text;
    }
  }

  async function previewApi(path, body, raw) {
    const response = await fetch(path, {
      method: "POST",
      headers: raw ? { "Content-Type": "application/json", "X-R1CDS-Preview": "1" } : PREVIEW_HEADERS,
      body: raw ? body : JSON.stringify(body),
      credentials: "same-origin",
    });
    const answer = await readJson(response);
    if (!response.ok) throw new CallError(diagnostics(answer, response.status));
    return answer;
  }

  // A CDS Hooks call as an EHR sends it; recorded in the calls panel whatever the outcome. With `poll`,
  // the call is that hook call sent again, and its existing entry shows the latest exchange.
  async function cdsCall(label, path, url, authorization, payload, extra, poll) {
    const started = performance.now();
    let status = 0;
    let answer = null;
    let failure = null;
    try {
      const response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: authorization },
        body: JSON.stringify(payload),
        credentials: "omit",
      });
      status = response.status;
      answer = await readJson(response);
    } catch (e) {
      failure = String(e);
    }
    const elapsed = performance.now() - started;
    recordCall({ label, url, authorization, payload, status, answer, elapsed, failure, extra }, poll);
    if (failure) throw new CallError(failure);
    if (status < 200 || status > 299) {
      throw new CallError(status === 401 ? "401: the service refused the call's JWT" : diagnostics(answer, status));
    }
    return answer;
  }

  function shortToken(authorization) {
    const token = String(authorization || "").replace(/^Bearer\s+/i, "");
    return token ? "Bearer " + token.slice(0, 16) + "…(" + token.length + " chars, preview key)" : "(none)";
  }

  function redacted(payload) {
    const copy = JSON.parse(JSON.stringify(payload));
    if (copy && copy.fhirAuthorization && copy.fhirAuthorization.access_token) {
      copy.fhirAuthorization.access_token = "(redacted)";
    }
    return copy;
  }

  function times(n) {
    return n === 1 ? "once" : n + " times";
  }

  function recordCall(call, poll) {
    const ok = call.status >= 200 && call.status < 300;
    const when = new Date().toLocaleTimeString();
    const refreshes = poll ? poll.refreshes : 0;
    const firedAt = poll && poll.entry ? poll.firedAt : when;
    const head = el(
      "summary",
      {},
      firedAt + "  POST " + new URL(call.url).pathname + "  ",
      el("span", { class: ok ? "code-ok" : "code-bad", text: call.failure ? "network error" : String(call.status) }),
      "  " + call.elapsed.toFixed(0) + " ms  " + call.label,
      refreshes ? el("span", { class: "refreshes", text: "  · refreshed " + times(refreshes) + ", last at " + when }) : null,
    );
    const timings = el("table", {}, el("tr", {}, el("td", { text: "Round trip" }), el("td", { text: call.elapsed.toFixed(1) + " ms" })));
    for (const [name, value] of Object.entries(call.extra || {})) {
      timings.append(el("tr", {}, el("td", { text: name }), el("td", { text: value })));
    }
    const body = el(
      "div",
      { class: "body" },
      refreshes
        ? el("p", {
            class: "refresh-note",
            text: "Fired at " + firedAt + ", then sent again " + times(refreshes) + " while the AI review was pending" +
              " (last at " + when + "). The latest exchange is shown.",
          })
        : null,
      el("h4", { text: "Timings" }),
      timings,
      el("h4", { text: "Request" }),
      el("pre", {
        text:
          "POST " + call.url + "\nContent-Type: application/json\nAuthorization: " + shortToken(call.authorization) +
          "\n\n" + JSON.stringify(redacted(call.payload), null, 2),
      }),
      el("h4", { text: "Response" }),
      el("pre", {
        class: "response",
        text: call.failure ? call.failure : "HTTP " + call.status + "\n\n" + (typeof call.answer === "string" ? call.answer : JSON.stringify(call.answer, null, 2)),
      }),
    );
    if (poll && poll.entry) {
      // The same hook call: its one entry is brought up to date, open or closed as the tester left it.
      poll.entry.replaceChildren(head, body);
      poll.entry.dataset.status = String(call.status);
      poll.entry.dataset.refreshes = String(refreshes);
      return;
    }
    const details = el("details", { class: "call", "data-status": call.status, "data-label": call.label }, head, body);
    if (poll) {
      details.dataset.refreshes = "0";
      poll.entry = details;
      poll.firedAt = when;
    }
    $("calls").prepend(details);
  }

  // ----------------------------------------------------------------------------------- sources

  function selectedSource() {
    return document.querySelector('input[name="source"]:checked').value;
  }

  function sourcePayload() {
    const kind = selectedSource();
    if (kind === "demo") {
      const chosen = document.querySelector('input[name="demo"]:checked');
      if (!chosen) throw new CallError("pick a demo patient");
      return { kind: "demo", demo: chosen.value };
    }
    if (kind === "bundle") {
      if (state.bundleText === null) throw new CallError("choose a Bundle file first");
      const patient = $("bundle-patient").value;
      return { kind: "bundle", bundle: state.bundleText, patientId: patient || null };
    }
    const server = $("fhir-server").value.trim();
    const patient = $("fhir-patient").value.trim();
    if (!server || !patient) throw new CallError("give the FHIR server's base URL and a patient id");
    const source = { kind: "fhir", fhirServer: server, patientId: patient };
    const token = $("fhir-token").value.trim();
    const encounter = $("fhir-encounter").value.trim();
    if (token) source.accessToken = token;
    if (encounter) source.encounterId = encounter;
    return source;
  }

  function showSource() {
    const kind = selectedSource();
    for (const block of document.querySelectorAll(".source")) block.hidden = block.dataset.source !== kind;
    clearDrafts(); // drafts name one patient
  }

  async function onBundleFile() {
    const file = $("bundle-file").files[0];
    const status = $("bundle-status");
    const select = $("bundle-patient");
    state.bundleText = null;
    select.replaceChildren();
    select.disabled = true;
    clearDrafts();
    if (!file) {
      status.textContent = "No file chosen.";
      return;
    }
    status.textContent = "Checking " + file.name + "…";
    try {
      const text = await file.text();
      const answer = await previewApi("/preview/api/bundle", text, true);
      state.bundleText = text;
      for (const p of answer.patients) {
        select.append(el("option", { value: p.id, text: p.id + " (" + p.gender + ", born " + p.birthDate + ")" }));
      }
      select.disabled = answer.patients.length < 2;
      status.textContent = file.name + ": " + answer.entries + " resources, " + answer.patients.length + " patient(s).";
      status.className = "status";
    } catch (e) {
      status.textContent = file.name + " refused: " + e.message;
      status.className = "status error";
    }
  }

  // ------------------------------------------------------------------------------------ drafts

  function currentPatientId() {
    const kind = selectedSource();
    if (kind === "demo") {
      const chosen = document.querySelector('input[name="demo"]:checked');
      return chosen ? chosen.value : null;
    }
    if (kind === "bundle") return $("bundle-patient").value || null;
    return $("fhir-patient").value.trim() || null;
  }

  function clearDrafts() {
    state.drafts = [];
    renderDrafts();
  }

  function describeResource(resource) {
    const concept = resource.medicationCodeableConcept || resource.code || {};
    const coding = (concept.coding || [])[0] || {};
    const name = concept.text || coding.display || resource.resourceType + "/" + resource.id;
    const dosage = ((resource.dosageInstruction || [])[0] || {}).text;
    return { name, detail: resource.resourceType + (dosage ? " · " + dosage : "") + " · " + (resource.status || "") };
  }

  function renderDrafts() {
    const list = $("draft-list");
    list.replaceChildren();
    if (!state.drafts.length) {
      list.append(el("li", { class: "empty", text: "No draft orders." }));
      return;
    }
    for (const resource of state.drafts) {
      const text = describeResource(resource);
      const remove = el("button", {
        type: "button",
        title: "Remove this draft order",
        "aria-label": "Remove " + text.name,
        onclick: () => {
          state.drafts = state.drafts.filter((d) => d !== resource);
          renderDrafts();
        },
      }, "✕");
      const ref = resource.resourceType + "/" + resource.id;
      const label = el("span", {}, text.name, el("span", { class: "kind", text: text.detail }));
      list.append(el("li", { "data-ref": ref, "data-name": text.name, title: ref }, label, remove));
    }
  }

  async function addOrder() {
    hideError();
    try {
      const patientId = currentPatientId();
      if (!patientId) throw new CallError("pick a patient before composing orders");
      const resource = await previewApi("/preview/api/draft", {
        patientId,
        code: $("order-product").value,
        doseMg: Number($("order-dose").value),
        frequency: $("order-frequency").value,
      });
      state.drafts.push(resource);
      renderDrafts();
    } catch (e) {
      showError(e.message);
    }
  }

  function onProduct() {
    const product = OPTIONS.composer.products.find((p) => p.code === $("order-product").value);
    if (product) $("order-dose").value = product.defaultDoseMg;
  }

  function reference(resource) {
    return resource.resourceType + "/" + resource.id;
  }

  // A suggestion's actions applied to the draft orders, as an EHR applies them before the user signs.
  function applyActions(actions) {
    for (const action of actions || []) {
      if (action.type === "create" && action.resource) {
        const resource = JSON.parse(JSON.stringify(action.resource));
        if (!resource.id) resource.id = "preview-" + Math.random().toString(16).slice(2, 14);
        state.drafts.push(resource);
      } else if (action.type === "update" && action.resource) {
        const target = reference(action.resource);
        const index = state.drafts.findIndex((d) => reference(d) === target);
        if (index >= 0) state.drafts[index] = action.resource;
        else state.drafts.push(action.resource);
      } else if (action.type === "delete") {
        const ids = [].concat(action.resourceId || (action.resource ? reference(action.resource) : []));
        state.drafts = state.drafts.filter((d) => !ids.includes(reference(d)));
      }
    }
    renderDrafts();
  }

  // ------------------------------------------------------------------------------------- cards

  function isReviewStatus(card) {
    const topic = (card.source || {}).topic || {};
    return topic.system === OPTIONS.reviewSystem;
  }

  function isPending(card) {
    const topic = (card.source || {}).topic || {};
    return isReviewStatus(card) && (topic.code === "pending" || topic.code === "busy");
  }

  function sortCards(cards) {
    return cards
      .map((card, index) => ({ card, index }))
      .sort((a, b) => (RANK[a.card.indicator] ?? 3) - (RANK[b.card.indicator] ?? 3) || a.index - b.index)
      .map((entry) => entry.card);
  }

  async function sendFeedback(serviceId, item) {
    const grant = await previewApi("/preview/api/token", { serviceId, feedback: true });
    const payload = { feedback: [Object.assign({ outcomeTimestamp: new Date().toISOString() }, item)] };
    await cdsCall("feedback: " + item.outcome, grant.path, grant.url, grant.authorization, payload, {});
  }

  function settle(node, text, failed) {
    for (const button of node.querySelectorAll("button, select, input")) button.disabled = true;
    const form = node.querySelector(".dismiss-form");
    if (form && !failed) form.remove();
    node.classList.toggle("done", !failed);
    const line = el("div", { class: failed ? "outcome failed" : "outcome", role: "status", text });
    node.querySelector(".outcome")?.remove();
    node.append(line);
    if (failed) for (const button of node.querySelectorAll("button, select, input")) button.disabled = false;
  }

  function renderCard(card, serviceId) {
    const indicator = RANK[card.indicator] === undefined ? "info" : card.indicator;
    const topic = ((card.source || {}).topic || {}).code || "";
    const node = el("article", {
      class: "card " + indicator + (isPending(card) ? " pending-card" : ""),
      "data-indicator": indicator,
      "data-topic": topic,
      "data-uuid": card.uuid || "",
    });
    const title = el("h3", {}, el("span", { class: "badge", text: indicator }), el("span", { class: "summary-text", text: card.summary }));
    if (isPending(card)) title.prepend(el("span", { class: "spinner", "aria-hidden": "true" }));
    node.append(title);
    const source = card.source || {};
    const sourceLine = el("div", { class: "source" }, "Source: ");
    const sourceUrl = safeUrl(source.url);
    sourceLine.append(sourceUrl ? link(sourceUrl, source.label || sourceUrl) : document.createTextNode(source.label || "unnamed"));
    if (topic) sourceLine.append(" · ", el("code", { text: topic }));
    node.append(sourceLine);
    if (card.detail) node.append(markdown(card.detail));
    if (card.links && card.links.length) {
      const links = el("ul", { class: "links" });
      for (const l of card.links) links.append(el("li", {}, link(l.url, l.label + (l.type === "smart" ? " (SMART app)" : ""))));
      node.append(links);
    }
    const actions = el("div", { class: "actions" });
    for (const suggestion of card.suggestions || []) {
      actions.append(el("button", {
        type: "button",
        class: "suggestion" + (suggestion.isRecommended ? " recommended" : ""),
        "data-suggestion": suggestion.uuid || "",
        onclick: async () => {
          applyActions(suggestion.actions);
          try {
            const item = { card: card.uuid, outcome: "accepted" };
            if (suggestion.uuid) item.acceptedSuggestions = [{ id: suggestion.uuid }];
            await sendFeedback(serviceId, item);
            settle(node, "Accepted: " + suggestion.label + " (applied to the draft orders; feedback stored)");
          } catch (e) {
            settle(node, "Applied, but the feedback was refused: " + e.message, true);
          }
        },
      }, suggestion.label));
    }
    if (card.uuid && !isReviewStatus(card)) {
      actions.append(el("button", { type: "button", class: "dismiss", onclick: () => showDismiss(node, card, serviceId) }, "Dismiss…"));
    }
    if (actions.childElementCount) node.append(actions);
    return node;
  }

  function showDismiss(node, card, serviceId) {
    if (node.querySelector(".dismiss-form")) return;
    const reasons = card.overrideReasons || [];
    const select = el("select", { class: "override-reason", "aria-label": "Override reason" });
    if (!reasons.length) select.append(el("option", { value: "", text: "(no reasons offered)" }));
    reasons.forEach((reason, index) => select.append(el("option", { value: String(index), text: reason.display || reason.code })));
    const comment = el("input", { type: "text", class: "override-comment", placeholder: "Comment (optional)", "aria-label": "Comment" });
    const confirm = el("button", {
      type: "button",
      class: "confirm-dismiss",
      onclick: async () => {
        const item = { card: card.uuid, outcome: "overridden" };
        const reason = reasons[Number(select.value)];
        if (reason || comment.value.trim()) {
          item.overrideReason = {};
          if (reason) item.overrideReason.reason = reason;
          if (comment.value.trim()) item.overrideReason.userComment = comment.value.trim();
        }
        try {
          await sendFeedback(serviceId, item);
          settle(node, "Dismissed" + (reason ? ": " + (reason.display || reason.code) : "") + " (feedback stored)");
        } catch (e) {
          settle(node, "The feedback was refused: " + e.message, true);
        }
      },
    }, "Dismiss card");
    node.append(el("div", { class: "dismiss-form" }, select, comment, confirm));
  }

  function renderCards(answer, prepared) {
    const box = $("cards");
    box.replaceChildren();
    const cards = sortCards((answer && answer.cards) || []);
    if (!cards.length) box.append(el("p", { class: "none", text: "No cards: the service had nothing to say." }));
    for (const card of cards) box.append(renderCard(card, prepared.serviceId));
    return cards;
  }

  // -------------------------------------------------------------------------------------- fire

  function showError(text) {
    const box = $("form-error");
    box.textContent = text;
    box.hidden = false;
  }

  function hideError() {
    $("form-error").hidden = true;
  }

  function setSummary(text, pending) {
    const box = $("summary");
    box.replaceChildren();
    if (pending) box.append(el("span", { class: "spinner", "aria-hidden": "true" }));
    box.append(text);
    box.classList.toggle("pending", Boolean(pending));
    box.dataset.state = pending ? "pending" : "settled";
  }

  function stopRefresh() {
    const poll = state.poll;
    if (poll && poll.timer !== null) clearTimeout(poll.timer);
    if (poll) poll.timer = null;
  }

  function minutes(ms) {
    const m = Math.round(ms / 60000);
    return m === 1 ? "1 minute" : m + " minutes";
  }

  // The answer still has a pending AI review card: call again after the current delay, then double it.
  function scheduleRefresh(poll, text) {
    const elapsed = Date.now() - poll.windowStart;
    if (elapsed + poll.delay > REFRESH_WINDOW_MS) {
      offerResume(text + ". The AI review was still in progress after " + minutes(elapsed) +
        ", so the page stopped calling again; the review itself goes on.");
      return;
    }
    const done = poll.refreshes ? " (sent again " + times(poll.refreshes) + " so far)" : "";
    setSummary(text + ". AI review in progress: calling again in " + poll.delay / 1000 + " s" + done +
      ", less often as time goes on (up to every " + REFRESH_MAX_MS / 1000 + " s), until it lands.", true);
    const delay = poll.delay;
    poll.delay = Math.min(poll.delay * 2, REFRESH_MAX_MS);
    poll.timer = setTimeout(() => {
      poll.timer = null;
      poll.refreshes++;
      fire(true);
    }, delay);
  }

  function offerResume(text) {
    setSummary(text, false);
    const box = $("summary");
    box.dataset.state = "stopped";
    box.append(" ", el("button", { type: "button", id: "resume-refresh", onclick: resumeRefresh }, "Resume refreshing"));
  }

  function resumeRefresh() {
    const poll = state.poll;
    if (!poll || poll.timer !== null) return;
    poll.windowStart = Date.now();
    poll.delay = REFRESH_FIRST_MS;
    poll.refreshes++;
    fire(true);
  }

  async function fire(isRefresh) {
    hideError();
    stopRefresh();
    if (!isRefresh) {
      state.generation++;
      state.poll = null; // a new hook call: the previous one is no longer refreshed
    }
    const generation = state.generation;
    const button = $("fire");
    if (!isRefresh) button.disabled = true;
    try {
      const started = performance.now();
      let poll = state.poll;
      if (!isRefresh || poll === null) {
        const hook = $("hook").value;
        const body = {
          source: sourcePayload(),
          hook,
          draftOrders: ORDER_HOOKS.has(hook) ? state.drafts.slice() : [],
        };
        poll = { body, entry: null, refreshes: 0, firedAt: null, windowStart: Date.now(), delay: REFRESH_FIRST_MS, timer: null };
        state.poll = poll;
      }
      // A refresh repeats the pending call as it was sent, whatever the controls say by now.
      const body = poll.body;
      const prepared = await previewApi("/preview/api/prepare", body);
      const prepareMs = performance.now() - started;
      const label = body.hook + " → " + prepared.serviceId;
      const answer = await cdsCall(label, prepared.path, prepared.url, prepared.authorization, prepared.request, {
        "Building the request (preview)": prepareMs.toFixed(1) + " ms",
      }, poll);
      if (generation !== state.generation) return;
      const cards = renderCards(answer, prepared);
      const counts = ["critical", "warning", "info"].map((i) => cards.filter((c) => c.indicator === i).length);
      const text = body.hook + " for " + prepared.patientId + ": " + cards.length + " card(s) (" + counts[0] + " critical, " + counts[1] + " warning, " + counts[2] + " info)";
      if (cards.some(isPending)) {
        scheduleRefresh(poll, text);
      } else {
        setSummary(text + (poll.refreshes ? " after sending it again " + times(poll.refreshes) + "." : "."), false);
      }
    } catch (e) {
      if (generation === state.generation) {
        showError(e.message);
        if (isRefresh) offerResume("Calling again failed: " + e.message + ". The AI review may still be running.");
        else setSummary("The call failed: " + e.message, false);
      }
    } finally {
      if (!isRefresh) button.disabled = false;
    }
  }

  function showOrders() {
    $("orders").classList.toggle("inactive", !ORDER_HOOKS.has($("hook").value));
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const radio of document.querySelectorAll('input[name="source"]')) radio.addEventListener("change", showSource);
    for (const radio of document.querySelectorAll('input[name="demo"]')) radio.addEventListener("change", clearDrafts);
    $("bundle-file").addEventListener("change", onBundleFile);
    $("bundle-patient").addEventListener("change", clearDrafts);
    $("add-order").addEventListener("click", addOrder);
    $("order-product").addEventListener("change", onProduct);
    $("hook").addEventListener("change", showOrders);
    $("controls").addEventListener("submit", (event) => {
      event.preventDefault();
      fire(false);
    });
    onProduct();
    showOrders();
    document.body.dataset.ready = "true";
  });
})();
