// Live refresh in place (issue 28), the console's only script, served from its own origin
// (CSP: script-src 'self'; connect-src 'self'). Every few seconds it fetches the page it is on
// (same URL, same session, a plain GET: the server renders it as for a reload) and swaps in each
// region marked data-live (an id on both sides), except a region where the person is busy: focus
// inside it, or a field changed from what the page sent (a ticked row, a typed reason). It says
// when it last refreshed, pauses while the tab is hidden, and offers a button to stop and start
// (WCAG 2.2.2). Without JavaScript the page works as before: the links of the refresh line reload it.
/* global document, location, DOMParser */
(function () {
  'use strict';
  var line = document.getElementById('live');
  if (!line) return;
  var every = Number(line.getAttribute('data-every'));
  if (!(every > 0)) return;
  var note = line.querySelector('.live-note');
  var stamp = line.querySelector('time');
  var stopped = false;
  var busy = false;
  var timer = null;
  var failures = 0;

  var button = document.createElement('button');
  button.type = 'button';
  button.className = 'live-toggle';
  line.appendChild(document.createTextNode(' '));
  line.appendChild(button);

  function say(text) {
    if (note) note.textContent = text;
  }
  function showState() {
    button.textContent = stopped ? 'Resume live updates' : 'Stop live updates';
    button.setAttribute('aria-pressed', stopped ? 'true' : 'false');
    if (failures === 0) say(stopped ? 'live updates stopped' : 'updates in place every ' + every + ' s');
  }

  function changed(field) {
    if (field.type === 'checkbox' || field.type === 'radio') return field.checked !== field.defaultChecked;
    if (field.tagName === 'SELECT') {
      // A select with no option marked selected shows its first one.
      var first = 0;
      for (var i = 0; i < field.options.length; i++) if (field.options[i].defaultSelected) first = i;
      return field.selectedIndex !== first;
    }
    if (field.type === 'hidden' || field.type === 'submit' || field.type === 'button') return false;
    return field.value !== field.defaultValue;
  }
  function busyIn(region) {
    var active = document.activeElement;
    if (active && active !== document.body && region.contains(active) && active.matches('input, select, textarea, button, summary'))
      return true;
    var fields = region.querySelectorAll('input, select, textarea');
    for (var i = 0; i < fields.length; i++) if (changed(fields[i])) return true;
    return false;
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(refresh, every * 1000);
  }

  function refresh() {
    if (stopped || busy) return;
    if (document.hidden) return schedule();
    busy = true;
    fetch(location.href, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'text/html' } })
      .then(function (res) {
        if (res.redirected || res.url.indexOf('/login') !== -1) {
          stopped = true;
          failures = 1;
          say('not updated: the session has ended; reload the page to log in again');
          return null;
        }
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.text();
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var regions = document.querySelectorAll('[data-live]');
        for (var i = 0; i < regions.length; i++) {
          var region = regions[i];
          var fresh = region.id ? doc.getElementById(region.id) : null;
          if (!fresh || busyIn(region)) continue;
          var open = region.querySelectorAll('details[open]');
          var freshDetails = fresh.querySelectorAll('details');
          for (var d = 0; d < open.length && d < freshDetails.length; d++) freshDetails[d].setAttribute('open', '');
          region.replaceWith(document.importNode(fresh, true));
        }
        var newStamp = doc.querySelector('#live time');
        if (newStamp && stamp) {
          stamp.textContent = newStamp.textContent;
          stamp.setAttribute('title', newStamp.getAttribute('title') || '');
          stamp.setAttribute('datetime', newStamp.getAttribute('datetime') || '');
        }
        failures = 0;
        showState();
      })
      .catch(function (e) {
        failures++;
        say('could not update (' + (e && e.message ? e.message : 'network') + '); trying again');
      })
      .then(function () {
        busy = false;
        schedule();
      });
  }

  button.addEventListener('click', function () {
    stopped = !stopped;
    failures = 0;
    showState();
    if (!stopped) refresh();
    else clearTimeout(timer);
  });
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && !stopped) refresh();
  });
  showState();
  schedule();
})();
