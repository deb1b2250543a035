// Warden reviewer UI: keeps the pending list current from the server's
// event stream (/reviews/events) and reloads a review page whose review was
// decided elsewhere. Served from our own origin; the CSP allows nothing else.
'use strict';

(function () {
  const pending = document.getElementById('pending');
  const review = document.querySelector('article.review[data-review-id]');
  if (!pending && !(review && review.dataset.state === 'pending')) {
    return;
  }
  const status = document.getElementById('live');
  const source = new EventSource('/reviews/events');
  source.addEventListener('open', function () {
    if (status) status.textContent = 'live';
  });
  source.addEventListener('error', function () {
    if (status) status.textContent = 'reconnecting…';
  });
  source.addEventListener('reviews', function (event) {
    const reviews = JSON.parse(event.data);
    if (pending) render(reviews);
    if (review && !reviews.some(function (r) { return r.id === review.dataset.reviewId; })) {
      source.close();
      window.location.reload();
    }
  });

  function summary(r) {
    if (r.kind === 'statement' && r.statement) {
      return r.statement.length > 160 ? r.statement.slice(0, 160) + '…' : r.statement;
    }
    return 'access to ' + r.target;
  }

  function cell(row, text) {
    const td = document.createElement('td');
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  // Builds rows with textContent only: review text never becomes markup.
  function render(reviews) {
    const rows = reviews.map(function (r) {
      const tr = document.createElement('tr');
      tr.dataset.reviewId = r.id;
      const first = cell(tr, '');
      const link = document.createElement('a');
      link.href = '/reviews/' + encodeURIComponent(r.id);
      const code = document.createElement('code');
      code.textContent = summary(r);
      link.appendChild(code);
      first.appendChild(link);
      cell(tr, r.operation);
      cell(tr, r.target);
      cell(tr, r.requester);
      cell(tr, r.expires_at);
      cell(tr, r.can_decide ? 'you can decide' : 'waiting');
      return tr;
    });
    pending.replaceChildren.apply(pending, rows);
    pending.dataset.count = String(reviews.length);
    const none = document.getElementById('none-pending');
    if (none) none.hidden = reviews.length > 0;
  }
})();
