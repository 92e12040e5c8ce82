/* The question page: stream an answer over server-sent events and render it with its sources.
   Everything from the server is inserted with textContent, never as HTML. */
(function () {
  "use strict";

  var form = document.getElementById("ask-form");
  var input = document.getElementById("question");
  var askButton = document.getElementById("ask-button");
  var newConversation = document.getElementById("new-conversation");
  var byDocumentBox = document.getElementById("by-document");
  var formError = document.getElementById("form-error");
  var conversation = document.getElementById("conversation");
  var emptyState = document.getElementById("empty-state");
  var template = document.getElementById("turn-template");
  var maxChars = parseInt(form.getAttribute("data-max-chars"), 10) || 2000;

  var MARKER = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;
  var HISTORY_TURNS = 3;       // earlier turns sent with a follow-up (they ride in the URL)
  var HISTORY_ANSWER_CHARS = 500;
  var CONTEXT_CHARS = 180;     // passage text shown around a quote
  var history = [];            // finished turns: {question, standalone_question, answer}
  var busy = false;
  var turnCount = 0;

  function squash(text) {
    return String(text || "").replace(/\s+/g, " ").trim();
  }

  function part(root, selector) {
    return root.querySelector(selector);
  }

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function documentUrl(docId, start, end) {
    return "/documents/" + encodeURIComponent(docId) + "?start=" + encodeURIComponent(start) +
      "&end=" + encodeURIComponent(end) + "#quote";
  }

  function sourceLink(href, text, label) {
    var link = make("a", null, text);
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener";
    if (label) link.setAttribute("aria-label", label);
    return link;
  }

  function showFormError(message) {
    formError.textContent = message;
    formError.hidden = !message;
  }

  function setBusy(value) {
    busy = value;
    askButton.disabled = value;
    askButton.textContent = value ? "Answering…" : "Ask";
  }

  /* --- rendering ------------------------------------------------------------------------ */

  function passageOf(turn, citation) {
    for (var i = 0; i < turn.hits.length; i++) {
      var hit = turn.hits[i];
      if (hit.doc_id === citation.doc_id && hit.start === citation.passage_start) return hit;
    }
    return null;
  }

  function location(heading, start, end) {
    var where = "characters " + start + "–" + end;
    return heading ? heading + " · " + where : where;
  }

  /* Where each sentence of the answer sits in its text: [start, end, quotes by number]. */
  function sentenceRanges(text, sentences) {
    var ranges = [], from = 0;
    (sentences || []).forEach(function (s) {
      var at = text.indexOf(s.text, from);
      if (at < 0 || !s.quotes || !s.quotes.length) return;
      var quotes = {};
      s.quotes.forEach(function (q) { quotes[q.n] = q; });
      ranges.push([at, at + s.text.length, quotes]);
      from = at + s.text.length;
    });
    return ranges;
  }

  /* The answer text with each [n] marker turned into a link to the quote that backs its own
     sentence (two sentences citing one passage open their two different quotes). */
  function renderAnswer(target, text, citations, sentences) {
    var byNumber = {};
    citations.forEach(function (c) { if (!(c.n in byNumber)) byNumber[c.n] = c; });
    var ranges = sentenceRanges(text, sentences);
    target.textContent = "";
    var last = 0;
    text.replace(MARKER, function (match, group, offset) {
      target.appendChild(document.createTextNode(text.slice(last, offset)));
      var own = null;
      ranges.forEach(function (r) { if (offset >= r[0] && offset < r[1]) own = r[2]; });
      group.split(",").forEach(function (raw, i) {
        var n = parseInt(raw, 10);
        var citation = (own && own[n]) || byNumber[n];
        if (i > 0) target.appendChild(document.createTextNode(" "));
        if (!citation) {
          target.appendChild(document.createTextNode("[" + n + "]"));
          return;
        }
        var link = sourceLink(documentUrl(citation.doc_id, citation.start, citation.end),
                              "[" + n + "]", "Source " + n + ": " + citation.title);
        link.className = "cite";
        link.title = squash(citation.quote);
        target.appendChild(link);
      });
      last = offset + match.length;
      return match;
    });
    target.appendChild(document.createTextNode(text.slice(last)));
  }

  /* The quote inside its passage: a little context either side, the quote in <mark>. */
  function quoteInContext(turn, citation) {
    var block = make("blockquote", "source-quote");
    var hit = passageOf(turn, citation);
    var before = "", after = "";
    if (hit) {
      var qs = citation.start - hit.start, qe = citation.end - hit.start;
      before = hit.text.slice(Math.max(0, qs - CONTEXT_CHARS), Math.max(0, qs));
      after = hit.text.slice(qe, qe + CONTEXT_CHARS);
      if (qs > CONTEXT_CHARS) before = "…" + before.replace(/^\S*\s/, "");
      if (qe + CONTEXT_CHARS < hit.text.length) after = after.replace(/\s\S*$/, "") + "…";
    }
    block.appendChild(make("span", "context", squash(before) + (before.trim() ? " " : "")));
    block.appendChild(make("mark", null, squash(citation.quote)));
    block.appendChild(make("span", "context", (after.trim() ? " " : "") + squash(after)));
    return block;
  }

  function renderSources(turn, answer) {
    var section = part(turn.root, ".sources");
    var list = part(turn.root, ".source-list");
    list.textContent = "";
    answer.citations.forEach(function (c, i) {
      var item = make("li", "source");
      item.id = "turn" + turn.id + "-source-" + (i + 1);
      var head = make("div", "source-head");
      head.appendChild(make("span", "source-n", "[" + c.n + "]"));
      head.appendChild(sourceLink(documentUrl(c.doc_id, c.start, c.end), c.title));
      item.appendChild(head);
      var hit = passageOf(turn, c);
      item.appendChild(make("div", "source-loc", location(hit ? hit.heading : "", c.start, c.end)));
      item.appendChild(quoteInContext(turn, c));
      list.appendChild(item);
    });
    section.hidden = answer.citations.length === 0;
  }

  /* Each document's position on the question: its statement and a link to its quote, or that it
     does not address the question. */
  function renderByDocument(turn, answer) {
    var section = part(turn.root, ".by-document");
    var list = part(turn.root, ".by-document-list");
    var views = answer.by_document || [];
    list.textContent = "";
    views.forEach(function (view, i) {
      var item = make("li", "doc-view " + (view.addressed ? "is-addressed" : "not-addressed"));
      item.setAttribute("data-doc-id", view.doc_id);
      var head = make("div", "source-head");
      head.appendChild(make("span", "source-n", String(i + 1)));
      var name = make("span", "doc-view-name");
      name.appendChild(make("span", "doc-view-title", view.title));
      if (view.addressed) {
        name.appendChild(document.createTextNode(" "));
        name.appendChild(make("span", "doc-view-kind",
                              view.source === "answer" ? "· in the answer" : "· its closest sentence"));
      }
      head.appendChild(name);
      item.appendChild(head);
      var c = view.citation;
      if (view.addressed && c) {
        item.appendChild(make("p", "doc-view-statement", squash(view.statement)));
        var where = make("p", "doc-view-link");
        var link = sourceLink(documentUrl(c.doc_id, c.start, c.end), "Show the quote in the document",
                              "Show the quote in " + view.title);
        link.title = squash(c.quote);
        where.appendChild(link);
        item.appendChild(where);
      } else {
        item.appendChild(make("p", "doc-view-statement muted", squash(view.statement) || "does not address it"));
      }
      list.appendChild(item);
    });
    section.hidden = views.length === 0;
  }

  function renderPassages(turn, hits, label, open) {
    var section = part(turn.root, ".passages");
    var list = part(turn.root, ".passage-list");
    list.textContent = "";
    hits.forEach(function (hit) {
      var item = make("li", "passage");
      var head = make("div", "source-head");
      head.appendChild(make("span", "source-n", String(hit.rank)));
      head.appendChild(sourceLink(documentUrl(hit.doc_id, hit.start, hit.end), hit.title));
      item.appendChild(head);
      item.appendChild(make("div", "source-loc", location(hit.heading, hit.start, hit.end)));
      var text = squash(hit.text);
      item.appendChild(make("p", "passage-text", text.length > 420 ? text.slice(0, 420).replace(/\s\S*$/, "") + "…" : text));
      list.appendChild(item);
    });
    part(turn.root, ".passages-summary").textContent = label + " (" + hits.length + ")";
    part(turn.root, ".passages-details").open = !!open;
    section.hidden = hits.length === 0;
  }

  function setStatus(turn, text) {
    var status = part(turn.root, ".status");
    status.hidden = !text;
    part(turn.root, ".status-text").textContent = text || "";
  }

  function showError(turn, title, message, hint) {
    var box = part(turn.root, ".turn-error");
    part(box, ".error-title").textContent = title;
    part(box, ".error-text").textContent = message || "";
    part(box, ".error-hint").textContent = hint || "";
    box.hidden = false;
  }

  function visibleNotes(notes) {
    return (notes || []).filter(function (note) {
      return !/^(evidence|model draft|second draft|abstained):/.test(note);
    });
  }

  /* "1 sentences ... were removed" -> "1 sentence ... was removed", capitalised, with a full stop. */
  function sentence(note) {
    var one = /^1 ((?:[\w-]+ )*?)(sentence|marker|passage|citation)s\b/;
    if (one.test(note)) note = note.replace(one, "1 $1$2").replace(/ were /, " was ");
    return note.charAt(0).toUpperCase() + note.slice(1) + (/[.!?]$/.test(note) ? "" : ".");
  }

  function renderNotes(turn, answer) {
    var list = part(turn.root, ".notes");
    var notes = visibleNotes(answer.notes);
    list.textContent = "";
    notes.forEach(function (note) {
      list.appendChild(make("li", null, sentence(note)));
    });
    list.hidden = notes.length === 0;
  }

  function renderMeta(turn, answer) {
    var t = answer.timings || {};
    var bits = [answer.backend + (answer.model ? " · " + answer.model : "")];
    if (t.retrieval_ms != null) bits.push("retrieval " + Math.round(t.retrieval_ms) + " ms");
    if (t.first_token_ms != null) bits.push("first token " + Math.round(t.first_token_ms) + " ms");
    if (t.first_verified_ms != null && t.first_verified_ms < t.total_ms) {
      bits.push("first quote " + (t.first_verified_ms / 1000).toFixed(1) + " s");
    }
    if (t.total_ms != null) bits.push("total " + (t.total_ms / 1000).toFixed(1) + " s");
    part(turn.root, ".meta").textContent = bits.join(" · ");
  }

  function copyText(turn) {
    var answer = turn.answer;
    var lines = [answer.answer];
    if (answer.citations.length) {
      lines.push("", "Sources:");
      answer.citations.forEach(function (c) {
        lines.push("[" + c.n + "] " + c.title + " — \u201c" + squash(c.quote) + "\u201d");
      });
    }
    return lines.join("\n");
  }

  function copyAnswer(turn) {
    var text = copyText(turn);
    var status = part(turn.root, ".copy-status");
    function done(ok) {
      status.textContent = ok ? "Copied answer and sources." : "Copy failed: select the text instead.";
      setTimeout(function () { status.textContent = ""; }, 2500);
    }
    function fallback() {
      var area = make("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  }

  /* --- one question ----------------------------------------------------------------------- */

  function finish(turn, answer) {
    turn.answer = answer;
    turn.root.setAttribute("aria-busy", "false");
    turn.root.classList.remove("streaming");
    setStatus(turn, "");
    part(turn.root, ".early-evidence").hidden = true;
    if (answer.standalone_question && answer.standalone_question !== answer.question) {
      part(turn.root, ".rewrite-text").textContent = answer.standalone_question;
      part(turn.root, ".rewrite").hidden = false;
    }
    turn.hits = answer.passages || turn.hits;
    var block = part(turn.root, ".answer-block");
    var answerNode = part(turn.root, ".answer");
    answerNode.classList.remove("draft");
    if (answer.error) {
      showError(turn, "The model backend failed.", answer.error,
                "The answer below is quoted from the retrieved passages instead.");
    }
    if (answer.abstained) {
      var box = part(turn.root, ".abstain");
      var reason = (answer.notes || []).filter(function (n) { return /^abstained:/.test(n); })[0];
      if (reason) box.appendChild(make("p", "small muted", "Why: " + reason.replace(/^abstained:\s*/, "") + "."));
      box.hidden = false;
      block.hidden = true;
      turn.root.classList.add("is-abstained");
      renderPassages(turn, turn.hits, "Related, but not an answer", true);
    } else {
      block.hidden = false;
      renderAnswer(answerNode, answer.answer, answer.citations, answer.sentences);
      var badge = part(turn.root, ".badge");
      var written = answer.mode === "model" || answer.mode === "repaired";
      badge.textContent = written ? "Checked against sources" : "Quoted from sources";
      badge.className = "badge " + (written ? "badge-ok" : "badge-info");
      badge.hidden = false;
      renderNotes(turn, answer);
      var draft = squash(turn.draft);
      if (draft && draft !== squash(answer.answer)) {
        part(turn.root, ".draft-text").textContent = draft;
        part(turn.root, ".draft-details").hidden = false;
      }
      part(turn.root, ".copy-button").hidden = false;
      renderSources(turn, answer);
      renderPassages(turn, turn.hits, "All retrieved passages", !!answer.error);
    }
    if (turn.byDocument) renderByDocument(turn, answer);
    renderMeta(turn, answer);
    history.push({question: answer.question, standalone_question: answer.standalone_question,
                  answer: String(answer.answer).slice(0, HISTORY_ANSWER_CHARS)});
    newConversation.hidden = false;
  }

  function fail(turn, message) {
    turn.root.setAttribute("aria-busy", "false");
    turn.root.classList.remove("streaming");
    turn.root.classList.add("is-failed");
    setStatus(turn, "");
    showError(turn, "No answer.", message,
              turn.hits.length ? "The passages retrieved before the failure are listed below." : "");
    if (turn.draft) {
      part(turn.root, ".answer-block").hidden = false;
      part(turn.root, ".answer").textContent = turn.draft;
      var badge = part(turn.root, ".badge");
      badge.textContent = "Unverified draft";
      badge.className = "badge badge-warn";
      badge.hidden = false;
    }
    if (turn.hits.length) renderPassages(turn, turn.hits, "Retrieved passages", true);
  }

  function ask(question) {
    var root = template.content.firstElementChild.cloneNode(true);
    turnCount += 1;
    var turn = {id: turnCount, root: root, hits: [], draft: "", answer: null, events: 0,
                byDocument: !!(byDocumentBox && byDocumentBox.checked)};
    root.id = "turn-" + turn.id;
    root.classList.add("streaming");
    part(root, ".turn-question").textContent = question;
    part(root, ".copy-button").addEventListener("click", function () { copyAnswer(turn); });
    conversation.insertBefore(root, conversation.firstChild);
    emptyState.hidden = true;

    var url = "/api/ask/stream?question=" + encodeURIComponent(question);
    if (turn.byDocument) url += "&by_document=true";
    if (history.length) {
      url += "&history=" + encodeURIComponent(JSON.stringify(history.slice(-HISTORY_TURNS)));
    }
    var source = new EventSource(url);
    setBusy(true);

    function on(name, handler) {
      source.addEventListener(name, function (event) {
        var data;
        /* Connection errors also arrive as "error" events, without data: onerror handles them. */
        try { data = JSON.parse(event.data); } catch (e) { return; }
        turn.events += 1;
        handler(data);
      });
    }
    function close() {
      turn.closed = true;
      source.close();
      setBusy(false);
    }

    on("rewrite", function (data) {
      part(root, ".rewrite-text").textContent = data.standalone_question;
      part(root, ".rewrite").hidden = false;
    });
    on("passages", function (data) {
      turn.hits = data.hits || [];
      renderPassages(turn, turn.hits, "Retrieved passages", false);
      setStatus(turn, "Found " + turn.hits.length + " passages. Writing a draft…");
    });
    /* A source sentence judged to answer, sent before the draft: verified words to read while
       the model writes. The checked answer replaces it; if the answer fails, it stays. */
    on("evidence", function (data) {
      var box = part(root, ".early-evidence");
      var title = part(root, ".early-title");
      title.textContent = "";
      title.appendChild(sourceLink(documentUrl(data.doc_id, data.start, data.end), data.title));
      var quote = part(root, ".early-quote");
      quote.textContent = "";
      quote.appendChild(quoteInContext(turn, data));
      box.hidden = false;
    });
    on("token", function (data) {
      if (!turn.draft) {
        part(root, ".answer-block").hidden = false;
        part(root, ".answer").classList.add("draft");
        setStatus(turn, "Drafting… each sentence is checked against the sources when the draft is done.");
      }
      turn.draft += data.text;
      part(root, ".answer").textContent = turn.draft;
    });
    on("error", function (data) {
      if (data.fatal) {  /* the server failed mid-stream: no "done" will follow */
        close();
        fail(turn, data.message);
        return;
      }
      showError(turn, "The model backend failed.", data.message,
                "Answering from the retrieved passages instead…");
    });
    on("done", function (data) {
      close();
      finish(turn, data);
    });
    /* A connection error: the server is down or refused the request. The server's own "error"
       events reach this handler too, as MessageEvents with data: those are handled above. */
    source.onerror = function (event) {
      if (turn.closed || event instanceof MessageEvent) return;
      close();
      fail(turn, turn.events ? "The connection to the server was lost before the answer was finished."
                             : "The server did not answer. Check that it is running, then ask again.");
    };
  }

  /* --- the form ------------------------------------------------------------------------- */

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    var question = input.value.trim();
    if (!question) {
      showFormError("Type a question first.");
      input.focus();
      return;
    }
    if (question.length > maxChars) {
      showFormError("The question is " + question.length + " characters long; the limit is " + maxChars + ".");
      input.focus();
      return;
    }
    showFormError("");
    input.value = "";
    ask(question);
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey &&
        !event.metaKey && !event.isComposing) {
      event.preventDefault();
      if (form.requestSubmit) form.requestSubmit(); else askButton.click();
    }
  });

  newConversation.addEventListener("click", function () {
    if (busy) return;
    history = [];
    conversation.textContent = "";
    emptyState.hidden = false;
    newConversation.hidden = true;
    input.focus();
  });

  var initial = new URLSearchParams(window.location.search).get("q");
  if (initial) {
    input.value = initial;
    if (form.requestSubmit) form.requestSubmit();
  }
})();
