;;; orrery-history.el --- Show Orrery recordings: timeline, state and value history  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 The Orrery authors

;; Author: The Orrery authors
;; Maintainer: The Orrery authors
;; Keywords: languages, tools, processes
;; URL: https://github.com/orrery-lsp/orrery
;; SPDX-License-Identifier: MIT

;; This file is not part of GNU Emacs.

;;; Commentary:

;; `orrery-timeline', `orrery-state-history' and `orrery-value-history'
;; show what a recording debug session ("record": true) saw, as tables in
;; the buffer "*Orrery timeline*", from the custom requests
;; orrery/timeline, orrery/stateHistory and orrery/valueHistory of the
;; current dape or dap-mode session (see orrery-debug.el).

;;; Code:

(require 'cl-lib)
(require 'seq)
(require 'subr-x)
(require 'orrery-debug)

;;;; Recording views

;; With "record": true the adapter records every line run in instrumented
;; modules (those with a breakpoint) with its bindings, and every return
;; with its result.  `orrery-timeline', `orrery-state-history' and
;; `orrery-value-history' send the custom requests orrery/timeline,
;; orrery/stateHistory and orrery/valueHistory on the current dape or
;; dap-mode session and show the answer as tables in "*Orrery timeline*".

(declare-function dap--send-message "ext:dap-mode" (message callback session))
(declare-function dap--make-request "ext:dap-mode" (command &optional args))
(declare-function dap--resp-handler "ext:dap-mode" (&optional success error))
(declare-function dape--live-connection "ext:dape" (type &optional nowarn require-selected))
(declare-function dape-request "ext:dape" (conn command arguments &optional cb))
(declare-function dape--config "ext:dape" (conn) t)
(declare-function dap--debug-session-launch-args "ext:dap-mode" (session) t)
(declare-function dap--debug-session-p "ext:dap-mode" (object) t)

(defconst orrery-timeline-limit 1000
  "How many timeline events a view asks for (the newest, when there are more).")

(defconst orrery-timeline-buffer "*Orrery timeline*"
  "The buffer the recording views render into.")

(defcustom orrery-timeline-cell-max 160
  "Longest value shown in one table cell before it is cut with an ellipsis."
  :type 'natnum
  :group 'orrery-debug)

(defun orrery-debug--plist (value)
  "Return VALUE, a decoded JSON value, with objects as keyword plists.
dape decodes objects as plists already; dap-mode decodes them as hash
tables with string keys.  Arrays become lists."
  (cond ((hash-table-p value)
         (let (out)
           (maphash (lambda (k v)
                      (setq out (cons (orrery-debug--plist v)
                                      (cons (intern (concat ":" k)) out))))
                    value)
           (nreverse out)))
        ((vectorp value) (mapcar #'orrery-debug--plist value))
        ((and (consp value) (keywordp (car value)))
         (cl-loop for (k v) on value by #'cddr
                  append (list k (orrery-debug--plist v))))
        ((consp value) (mapcar #'orrery-debug--plist value))
        (t value)))

(defun orrery-debug--cell (value &optional max)
  "Return VALUE as one table cell: one line, \"|\" escaped, at most MAX chars.
MAX defaults to `orrery-timeline-cell-max'.  nil, :json-false and
the empty string give \"\"."
  (if (or (null value) (eq value :json-false) (equal value ""))
      ""
    (let* ((max (or max orrery-timeline-cell-max))
           (s (replace-regexp-in-string "[ \t]*\n[ \t]*" " "
                                        (if (stringp value) value
                                          (format "%s" value)))))
      (when (> (length s) max)
        (setq s (concat (substring s 0 (1- max)) "…")))
      (replace-regexp-in-string "|" "\\\\|" s))))

(defun orrery-debug--rel-ms (time-us t0)
  "Return TIME-US (microseconds) relative to T0 as \"+1.500 ms\"."
  (if (and (numberp time-us) (numberp t0))
      (format "+%.3f ms" (/ (- time-us t0) 1000.0))
    "?"))

(defun orrery-debug--where (event &optional module)
  "Return \"FUNCTION:LINE\" of EVENT, with its module unless it is MODULE."
  (let ((m (plist-get event :module))
        (line (plist-get event :line)))
    (concat (if (and (stringp m) (not (equal m module))) (concat m ".") "")
            (or (plist-get event :function) "?")
            (if (numberp line) (format ":%d" line) ""))))

(defun orrery-debug--bindings (bindings &optional max)
  "Return the BINDINGS plist as \"a = 1, b = 2\" (a cell of at most MAX)."
  (orrery-debug--cell
   (mapconcat (lambda (kv) (format "%s = %s" (car kv) (cdr kv)))
              (cl-loop for (k v) on bindings by #'cddr
                       collect (cons (substring (symbol-name k) 1) v))
              ", ")
   max))

(defun orrery-debug--earliest (items)
  "Return the smallest :timeUs of ITEMS, or nil."
  (let (t0)
    (dolist (x items t0)
      (let ((t1 (plist-get x :timeUs)))
        (when (and (numberp t1) (or (null t0) (< t1 t0)))
          (setq t0 t1))))))

(defun orrery-debug--row (&rest cells)
  "Return a table row of CELLS."
  (concat "| " (mapconcat #'identity cells " | ") " |"))

(defconst orrery-debug--no-recording
  "Nothing recorded.  The timeline records only when the session was \
started with \"record\": t, and only in modules with a breakpoint \
(instrumented): set one and run the code."
  "What an empty recording view says.")

(defun orrery-timeline-render (body &optional module pid offset)
  "Return the text of the timeline view of BODY (an orrery/timeline answer).
MODULE and PID are what it was asked for, OFFSET the first event's
index.  One row per event: seq, time relative to the first shown,
pid, function:line, and the bindings of a line or \"→ result\" of a
return."
  (let* ((body (orrery-debug--plist body))
         (events (plist-get body :events))
         (total (or (plist-get body :total) (length events)))
         (offset (or offset 0))
         (scope (delq nil (list module pid)))
         (out (list "" (concat "Orrery timeline"
                               (if scope (concat " — " (string-join scope " · ")) "")))))
    (if (null events)
        (push orrery-debug--no-recording out)
      (push (concat (if (< (length events) total)
                        (format "events %d–%d of %d" (1+ offset)
                                (+ offset (length events)) total)
                      (format "%d event%s" total (if (= total 1) "" "s")))
                    "; time relative to the first shown; → marks a return.")
            out)
      (push "" out)
      (push "| seq | time | pid | function:line | bindings / result |" out)
      (push "|---:|---:|---|---|---|" out)
      (let ((t0 (orrery-debug--earliest events)))
        (dolist (e events)
          (let ((depth (plist-get e :depth)))
            (push (orrery-debug--row
                   (format "%s" (plist-get e :seq))
                   (orrery-debug--rel-ms (plist-get e :timeUs) t0)
                   (orrery-debug--cell (plist-get e :pid))
                   (concat (make-string (* 2 (if (numberp depth) (min (max depth 0) 8) 0)) ?\s)
                           (orrery-debug--cell (orrery-debug--where e module)))
                   (if (equal (plist-get e :kind) "return")
                       (concat "→ " (orrery-debug--cell (plist-get e :result))
                               (if (plist-get e :state)
                                   (format " (state %s)" (orrery-debug--cell (plist-get e :state)))
                                 ""))
                     (orrery-debug--bindings (plist-get e :bindings))))
                  out)))))
    (concat (string-join (nreverse out) "\n") "\n")))

(defun orrery-state-history-render (body)
  "Return the text of the state history view of BODY.
BODY is an orrery/stateHistory answer: per callback its message, state
before → state after and what it returned."
  (let* ((body (orrery-debug--plist body))
         (module (or (plist-get body :module) "?"))
         (history (plist-get body :history))
         (out (list "" (concat "Orrery state history — " module))))
    (if (null history)
        (push (format "No recorded callback of %s.  The state history needs a \
recording session (\"record\": t) and a breakpoint in %s, then messages \
to the process." module module)
              out)
      (push (format "%d callback%s; time relative to the first."
                    (length history) (if (= (length history) 1) "" "s"))
            out)
      (push "" out)
      (push "| seq | time | pid | callback | message | state before → state after | returned |" out)
      (push "|---:|---:|---|---|---|---|---|" out)
      (let ((t0 (orrery-debug--earliest history)))
        (dolist (h history)
          (let* ((before (plist-get h :stateBefore))
                 (after (plist-get h :stateAfter))
                 (message (plist-get h :message))
                 (line (plist-get h :line)))
            (push (orrery-debug--row
                   (format "%s" (plist-get h :seq))
                   (orrery-debug--rel-ms (plist-get h :timeUs) t0)
                   (orrery-debug--cell (plist-get h :pid))
                   (concat (orrery-debug--cell (plist-get h :callback))
                           (if (numberp line) (format ":%d" line) ""))
                   (if (= (length message) 2)
                       (orrery-debug--cell (cadr message))
                     (orrery-debug--bindings message))
                   (if (and (stringp before) (equal before after))
                       (concat (orrery-debug--cell before) " (unchanged)")
                     (concat (if (stringp before) (orrery-debug--cell before) "?")
                             " → "
                             (if (stringp after) (orrery-debug--cell after) "?")))
                   (orrery-debug--cell (plist-get h :returned)))
                  out)))))
    (concat (string-join (nreverse out) "\n") "\n")))

(defun orrery-value-history-render (body)
  "Return the text of the value history view of BODY.
BODY is an orrery/valueHistory answer: each value the variable took,
where, and the other bindings then."
  (let* ((body (orrery-debug--plist body))
         (var (or (plist-get body :variable) "?"))
         (changes (plist-get body :changes))
         (out (list "" (format "Orrery value history — %s" var))))
    (if (null changes)
        (push (format "No recorded value of %s.  %s" var
                      (substring orrery-debug--no-recording (length "Nothing recorded.  ")))
              out)
      (push (format "%d change%s; time relative to the first."
                    (length changes) (if (= (length changes) 1) "" "s"))
            out)
      (push "" out)
      (push "| seq | time | pid | function:line | value | with |" out)
      (push "|---:|---:|---|---|---|---|" out)
      (let ((t0 (orrery-debug--earliest changes)))
        (dolist (c changes)
          (push (orrery-debug--row
                 (format "%s" (plist-get c :seq))
                 (orrery-debug--rel-ms (plist-get c :timeUs) t0)
                 (orrery-debug--cell (plist-get c :pid))
                 (orrery-debug--cell (orrery-debug--where c))
                 (orrery-debug--cell (plist-get c :value))
                 (orrery-debug--bindings (plist-get c :with) 100))
                out))))
    (concat (string-join (nreverse out) "\n") "\n")))

(defun orrery-debug--session-type (session)
  "Return the debug type of SESSION, a dape connection or dap-mode session.
nil when it cannot be told."
  (ignore-errors
    (plist-get (cond ((and (fboundp 'dap--debug-session-p) (dap--debug-session-p session))
                      (dap--debug-session-launch-args session))
                     ((fboundp 'dape--config) (dape--config session)))
               :type)))

(defun orrery-debug--live-dape ()
  "Return the current dape connection (stopped or not), or nil."
  (and (fboundp 'dape--live-connection)
       (ignore-errors (dape--live-connection 'last t))))

(defun orrery-debug-request (command arguments callback)
  "Send the custom DAP request COMMAND with ARGUMENTS to the Orrery session.
The session is the current dape connection, else the running dap-mode
session.  CALLBACK gets the response body as a plist (JSON objects as
keyword plists, arrays as lists).  Signals `user-error' without a
session, or when it is another debugger's; failures are reported with
`message'."
  (let* ((dape (orrery-debug--live-dape))
         (dap (and (not dape) (orrery-debug--dap-session))))
    (unless (or dape dap)
      (user-error "Orrery: no debug session: start an Orrery one (dape or \
dap-mode, with recording) and set a breakpoint"))
    (let ((type (orrery-debug--session-type (or dape dap))))
      (when (and type (not (equal type orrery-debug-type)))
        (user-error "Orrery: the current debug session is of type %s, not \"orrery\""
                    type)))
    (if dape
        (dape-request dape command arguments
                      (lambda (&optional body error)
                        (if error
                            (message "Orrery: %s failed: %s" command error)
                          (funcall callback (orrery-debug--plist body)))))
      (dap--send-message
       (dap--make-request command arguments)
       (dap--resp-handler
        (lambda (response)
          (funcall callback (orrery-debug--plist
                             (if (hash-table-p response)
                                 (gethash "body" response)
                               (plist-get response :body)))))
        (lambda (msg) (message "Orrery: %s failed: %s" command msg)))
       dap))))

(defvar-local orrery-timeline--refresh nil
  "A function that asks for and renders this view again.")

(define-derived-mode orrery-timeline-mode special-mode "Orrery-Timeline"
  "Major mode of the Orrery recording views.
\\<orrery-timeline-mode-map>\\[revert-buffer] asks the debug session again."
  (setq-local truncate-lines t)
  (setq-local revert-buffer-function
              (lambda (&rest _)
                (if orrery-timeline--refresh
                    (funcall orrery-timeline--refresh)
                  (user-error "Nothing to refresh")))))

(defun orrery-timeline--show (text refresh)
  "Show TEXT in `orrery-timeline-buffer'; REFRESH renders it again.
Return the buffer."
  (let ((buf (get-buffer-create orrery-timeline-buffer)))
    (with-current-buffer buf
      (unless (derived-mode-p 'orrery-timeline-mode)
        (orrery-timeline-mode))
      (let ((inhibit-read-only t))
        (erase-buffer)
        (insert text)
        (goto-char (point-min)))
      (setq orrery-timeline--refresh refresh))
    (display-buffer buf)
    buf))

(defun orrery-debug--module-at-point ()
  "Return the module of the current Elixir buffer around point, or nil."
  (and (buffer-file-name)
       (string-match-p "\\.exs?\\'" (buffer-file-name))
       (save-excursion
         (end-of-line)
         (when (or (re-search-backward "^[ \t]*defmodule[ \t]+\\([A-Z][A-Za-z0-9_.]*\\)" nil t)
                   (re-search-forward "^[ \t]*defmodule[ \t]+\\([A-Z][A-Za-z0-9_.]*\\)" nil t))
           (match-string-no-properties 1)))))

(defun orrery-timeline--args (input)
  "Return the orrery/timeline filter for INPUT: a pid, a module or all."
  (let ((s (string-trim (or input ""))))
    (cond ((string-empty-p s) nil)
          ((string-match-p "\\`#PID<[0-9]+\\.[0-9]+\\.[0-9]+>\\'" s) (list :pid s))
          ((string-match-p "\\`<[0-9]+\\.[0-9]+\\.[0-9]+>\\'" s) (list :pid (concat "#PID" s)))
          (t (list :module s)))))

;;;###autoload
(defun orrery-timeline (module)
  "Show the recorded timeline of MODULE in the current debug session.
MODULE defaults to the module around point; empty shows every
module, a pid (#PID<0.150.0>) one process.  Each row: seq, time in ms
after the first shown, pid, function:line, and the bindings of a line
or \"→ result\" of a return.  At most the newest
`orrery-timeline-limit' events."
  (interactive
   (let ((default (orrery-debug--module-at-point)))
     (list (read-string (format-prompt "Timeline of module or pid (empty: all)" default)
                        nil nil default))))
  (let* ((filter (orrery-timeline--args module))
         (refresh (lambda () (orrery-timeline module))))
    (orrery-debug-request
     "orrery/timeline" (append filter (list :offset 0 :limit orrery-timeline-limit))
     (lambda (body)
       (let ((total (or (plist-get body :total) 0)))
         (if (and (> total orrery-timeline-limit)
                  (< (length (plist-get body :events)) total))
             ;; More than one page: show the newest events.
             (let ((offset (- total orrery-timeline-limit)))
               (orrery-debug-request
                "orrery/timeline"
                (append filter (list :offset offset :limit orrery-timeline-limit))
                (lambda (newest)
                  (orrery-timeline--show
                   (orrery-timeline-render newest (plist-get filter :module)
                                           (plist-get filter :pid) offset)
                   refresh))))
           (orrery-timeline--show
            (orrery-timeline-render body (plist-get filter :module) (plist-get filter :pid))
            refresh)))))))

;;;###autoload
(defun orrery-state-history (module)
  "Show the state history of the GenServer MODULE in the current debug session.
Each callback with its message, state before → state after and what it
returned.  MODULE defaults to the module around point."
  (interactive
   (let ((default (orrery-debug--module-at-point)))
     (list (read-string (format-prompt "State history of GenServer" default)
                        nil nil default))))
  (when (string-empty-p (string-trim (or module "")))
    (user-error "Orrery: which GenServer module?"))
  (let ((module (string-trim module)))
    (orrery-debug-request
     "orrery/stateHistory" (list :module module)
     (lambda (body)
       (orrery-timeline--show (orrery-state-history-render body)
                              (lambda () (orrery-state-history module)))))))

;;;###autoload
(defun orrery-value-history (variable)
  "Show every value VARIABLE took in the current debug session's recording.
With where it changed and the other bindings then; state gives a
GenServer's states.  VARIABLE defaults to the symbol at point."
  (interactive
   (let ((default (let ((s (thing-at-point 'symbol t)))
                    (and s (string-match-p "\\`[a-z_][A-Za-z0-9_]*\\'" s) s))))
     (list (read-string (format-prompt "Value history of variable" default)
                        nil nil default))))
  (let ((variable (string-trim (or variable ""))))
    (unless (string-match-p "\\`[a-z_][A-Za-z0-9_]*\\'" variable)
      (user-error "Orrery: not a variable name: %S" variable))
    (orrery-debug-request
     "orrery/valueHistory" (list :variable variable)
     (lambda (body)
       (orrery-timeline--show (orrery-value-history-render body)
                              (lambda () (orrery-value-history variable)))))))

(when (featurep 'dap-mode) (orrery-dap-register))
(when (featurep 'dape) (orrery-dape-register))

(provide 'orrery-history)
;;; orrery-history.el ends here
