// The jaxlatent explorer: panels side by side at one latent and one strength step.
// Data: the JSON block #explorer-data (written by jaxlatent/explorer_page.py). No network.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  const S = data.steps, MID = (S - 1) / 2;
  const methods = data.methods;
  const state = { latent: 0, step: MID, panels: [] };

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }
  const fmt = (v) => (v === null || v === undefined) ? "–" :
    (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0)) ? v.toExponential(2) : (+v.toPrecision(3)).toString();
  const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const signed = (v) => (v > 0 ? "+" : "") + fmt(v);
  const nDirs = (m) => m.frames[state.latent].length;

  function label(m, d, s) {
    if (!m.labels) return null;
    const [c, p] = m.labels[state.latent][d][s];
    return { cls: c, conf: p };
  }
  function numbers(m, d) {
    return Object.entries(m.numbers).map(([k, v]) => [k, v[state.latent][d]]).filter(([, v]) => v !== null);
  }

  // ---------------------------------------------------------------- default panels: distinct groups
  function defaultPanels() {
    const picks = [];
    const prefer = [(m) => m.id.startsWith("lb_iterative_w"), (m) => m.id.startsWith("lb_iterative"),
                    (m) => m.id === "ganspace_pca", (m) => m.id === "metric_w", (m) => m.id.startsWith("metric")];
    const used = new Set();
    for (const p of prefer) {
      const i = methods.findIndex(p);
      if (i >= 0 && !used.has(methods[i].group)) { picks.push(i); used.add(methods[i].group); }
      if (picks.length === 3) break;
    }
    for (let i = 0; picks.length < Math.min(3, methods.length) && i < methods.length; i++) {
      if (!picks.includes(i)) picks.push(i);
    }
    return picks.map((m) => ({ method: m, direction: 0 }));
  }

  // ---------------------------------------------------------------- header controls
  function buildControls() {
    const c = document.getElementById("controls");
    const lat = el("div", { class: "latents", role: "group", "aria-label": "latent" });
    data.seeds.forEach((seed, i) => {
      const b = el("button", { class: "latent", title: "seed " + seed, "data-latent": i,
                               onclick: () => setLatent(i) },
                   [el("img", { alt: "seed " + seed, src: methods[0].frames[i][0][MID] })]);
      lat.appendChild(b);
    });
    const sel = el("select", { id: "latent", "aria-label": "latent", onchange: (e) => setLatent(+e.target.value) });
    data.seeds.forEach((seed, i) => sel.appendChild(el("option", { value: i, text: "seed " + seed })));
    const step = el("input", { type: "range", id: "step", min: 0, max: S - 1, step: 1, value: state.step,
                               "aria-label": "strength step (every panel)",
                               oninput: (e) => setStep(+e.target.value) });
    c.append(el("label", { text: "latent" }), sel, lat,
             el("label", { for: "step", text: "strength" }), step,
             el("span", { id: "step-readout" }),
             el("button", { class: "small", id: "add-panel", text: "+ panel", onclick: () => addPanel() }));
    document.getElementById("help").innerHTML =
      "<kbd>←</kbd> <kbd>→</kbd> strength step · <kbd>1</kbd>–<kbd>9</kbd> direction (every panel) · " +
      "<kbd>↑</kbd> <kbd>↓</kbd> previous / next direction · <kbd>[</kbd> <kbd>]</kbd> latent · " +
      "<kbd>0</kbd> back to the latent itself. Every panel shows the same latent at the same strength step; " +
      "each method's strengths are its own (shown beside its frame). Frames are the library's outputs " +
      (data.image.lossless ? "pixel for pixel (lossless PNG, " : "(downscaled JPEG, ") +
      data.image.height + "×" + data.image.width + "). Size: " + (data.budget.frame_bytes / 1024).toFixed(0) +
      " KB of frames, at most " + (data.budget.strip_budget / 1024).toFixed(1) + " KB per latent and direction " +
      "(largest " + (data.budget.largest_strip / 1024).toFixed(1) + " KB).";
  }

  // ---------------------------------------------------------------- panels
  function methodSelect(p) {
    const sel = el("select", { class: "method", "aria-label": "method",
                               onchange: (e) => setMethod(state.panels.indexOf(p), +e.target.value) });
    const groups = {};
    methods.forEach((m, i) => {
      if (!groups[m.group]) { groups[m.group] = el("optgroup", { label: m.group }); sel.appendChild(groups[m.group]); }
      groups[m.group].appendChild(el("option", { value: i, text: m.name }));
    });
    return sel;
  }

  function buildPanel(p) {
    const root = el("section", { class: "panel" });
    p.root = root;
    p.select = methodSelect(p);
    const remove = el("button", { class: "small", text: "×", title: "remove panel",
                                  onclick: () => removePanel(state.panels.indexOf(p)) });
    p.about = el("div", { class: "about" });
    p.frame = el("img", { class: "frame", alt: "frame" });
    p.readout = el("div", { class: "readout" });
    p.strip = el("div", { class: "strip" });
    p.dirs = el("table", { class: "dirs" });
    root.append(el("div", { class: "top" }, [p.select, remove]), p.about,
                el("div", { class: "view" }, [p.frame, p.readout]), p.strip, p.dirs);
    document.getElementById("panels").appendChild(root);
    rebuildPanel(p);
  }

  function rebuildPanel(p) {
    const m = methods[p.method];
    p.select.value = p.method;
    p.about.textContent = m.about;
    p.dirs.replaceChildren();
    p.rows = [];
    for (let d = 0; d < nDirs(m); d++) {
      const slider = el("input", { type: "range", min: 0, max: S - 1, step: 1, value: state.step,
                                   "aria-label": "strength of " + m.names[state.latent][d],
                                   oninput: (e) => { p.direction = d; setStep(+e.target.value); } });
      const row = el("tr", { "data-direction": d, onclick: (e) => { if (e.target !== slider) setDirection(p, d); } },
                     [el("td", { class: "key", text: d < 9 ? String(d + 1) : "" }), el("td", {}, [el("img", { alt: "" })]),
                      el("td", { class: "dname" }), el("td", {}, [slider]), el("td", { class: "lab" })]);
      p.rows.push({ row, slider, img: row.querySelector("img"), name: row.children[2], lab: row.children[4] });
      p.dirs.appendChild(row);
    }
    p.strip.replaceChildren();
    p.film = [];
    for (let s = 0; s < S; s++) {
      const fig = el("figure", { onclick: () => setStep(s) }, [el("img", { alt: "" }), el("figcaption")]);
      p.film.push(fig);
      p.strip.appendChild(fig);
    }
    drawPanel(p);
  }

  function drawPanel(p) {
    const m = methods[p.method], L = state.latent, s = state.step;
    p.direction = Math.min(p.direction, nDirs(m) - 1);
    const d = p.direction;
    p.frame.src = m.frames[L][d][s];
    p.frame.dataset.method = m.id; p.frame.dataset.latent = L; p.frame.dataset.direction = d; p.frame.dataset.step = s;
    const lab = label(m, d, s);
    const parts = [];
    parts.push(`<div><b>${esc(m.names[L][d])}</b></div>`);
    if (lab) parts.push(`<div><span class="cls">class ${lab.cls}</span> <span class="conf">${(100 * lab.conf).toFixed(0)}%</span></div>`);
    parts.push(`<div class="num">${esc(m.strength_name)} = ${signed(m.strengths[L][d][s])}</div>`);
    parts.push(`<div class="num">step ${s - MID > 0 ? "+" : ""}${s - MID} of ±${MID}</div>`);
    for (const [k, v] of numbers(m, d)) parts.push(`<div class="num">${esc(k)}: ${fmt(v)}</div>`);
    p.readout.innerHTML = parts.join("");
    p.film.forEach((fig, j) => {
      fig.firstChild.src = m.frames[L][d][j];
      const lj = label(m, d, j);
      fig.lastChild.textContent = lj ? `${lj.cls} · ${(100 * lj.conf).toFixed(0)}%` : signed(m.strengths[L][d][j]);
      fig.classList.toggle("on", j === s);
    });
    p.rows.forEach((r, j) => {
      r.img.src = m.frames[L][j][s];
      r.slider.value = s;
      r.name.textContent = m.names[L][j] + numbers(m, j).slice(0, 1).map(([k, v]) => ` (${k} ${fmt(v)})`).join("");
      const lj = label(m, j, s);
      r.lab.textContent = lj ? `${lj.cls} ${(100 * lj.conf).toFixed(0)}%` : "";
      r.row.classList.toggle("on", j === d);
    });
  }

  function drawAll() {
    document.getElementById("step").value = state.step;
    document.getElementById("latent").value = state.latent;
    document.getElementById("step-readout").textContent = `step ${state.step - MID > 0 ? "+" : ""}${state.step - MID} of ±${MID}`;
    document.querySelectorAll(".latents button").forEach((b, i) => b.classList.toggle("on", i === state.latent));
    state.panels.forEach(drawPanel);
  }

  // ---------------------------------------------------------------- actions (also the test API)
  function setStep(s) { state.step = Math.max(0, Math.min(S - 1, s)); drawAll(); }
  function setLatent(i) {
    state.latent = (i + data.seeds.length) % data.seeds.length;
    state.panels.forEach(rebuildPanel);
    drawAll();
  }
  function setDirection(p, d) { p.direction = Math.max(0, Math.min(nDirs(methods[p.method]) - 1, d)); drawPanel(p); }
  function setMethod(i, m) { const p = state.panels[i]; p.method = m; p.direction = Math.min(p.direction, nDirs(methods[m]) - 1); rebuildPanel(p); }
  function addPanel(m) {
    const p = { method: m === undefined ? (state.panels.length ? (state.panels[state.panels.length - 1].method + 1) % methods.length : 0) : m,
                direction: 0 };
    state.panels.push(p);
    buildPanel(p);
  }
  function removePanel(i) {
    if (state.panels.length <= 1) return;
    const [p] = state.panels.splice(i, 1);
    p.root.remove();
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const onSelect = e.target && e.target.tagName === "SELECT";
    let handled = true;
    if (e.key === "ArrowLeft" && !onSelect) setStep(state.step - 1);
    else if (e.key === "ArrowRight" && !onSelect) setStep(state.step + 1);
    else if (e.key === "ArrowUp" && !onSelect) state.panels.forEach((p) => setDirection(p, p.direction - 1));
    else if (e.key === "ArrowDown" && !onSelect) state.panels.forEach((p) => setDirection(p, p.direction + 1));
    else if (/^[1-9]$/.test(e.key)) state.panels.forEach((p) => setDirection(p, +e.key - 1));
    else if (e.key === "0" || e.key === "Home") setStep(MID);
    else if (e.key === "[") setLatent(state.latent - 1);
    else if (e.key === "]") setLatent(state.latent + 1);
    else handled = false;
    if (handled) e.preventDefault();
  });

  buildControls();
  for (const p of defaultPanels()) addPanel(p.method);
  drawAll();
  window.explorer = {
    data, state, setStep, setLatent, setMethod, addPanel, removePanel,
    setDirection: (i, d) => setDirection(state.panels[i], d),
    shown: (i) => { const p = state.panels[i]; return { method: methods[p.method].id, latent: state.latent,
                                                        direction: p.direction, step: state.step, src: p.frame.src }; },
  };
})();
