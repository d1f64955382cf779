;;; orrery-live.el --- Live values of the attached node in Elixir buffers  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 The Orrery authors

;; Author: The Orrery authors
;; Maintainer: The Orrery authors
;; Keywords: languages, tools, processes
;; URL: https://github.com/orrery-lsp/orrery
;; SPDX-License-Identifier: MIT

;; This file is not part of GNU Emacs.

;;; Commentary:

;; `orrery-live-mode', turned on in the buffers where Orrery runs (as
;; eglot's server, as a companion connection or as lsp-mode's add-on):
;; overlays with what code lenses would show (eglot never asks for code
;; lenses; lsp-mode shows them itself), inlay hints drawn by this package
;; where the client cannot (Emacs 28, companion, lsp-mode), refreshed when
;; the server says values changed (workspace/codeLens/refresh,
;; workspace/inlayHint/refresh) and on a timer.  Part of the orrery
;; package; see orrery.el.

;;; Code:

(require 'cl-lib)
(require 'seq)
(require 'subr-x)
(require 'jsonrpc)
(require 'eglot)
(require 'orrery)

(defvar eglot-inlay-hints-mode)         ; Emacs 29+ eglot only.
(defvar orrery-live-mode)
(declare-function eglot-inlay-hints-mode "eglot" (&optional arg))
(declare-function orrery-debug-test-start "orrery-debug" (config))
(declare-function eglot--update-hints-1 "eglot" (from to))

(defvar-local orrery--inflight nil
  "Live requests in flight for this buffer.
An alist from kind to (SERVER START-TIME ASKED-AGAIN).")

(defun orrery--clear-overlays (kind)
  "Delete this buffer's live overlays of KIND (`orrery-lens' or `orrery-hint')."
  (save-restriction
    (widen)
    (remove-overlays (point-min) (point-max) kind t)))

(defun orrery--lsp-point (position)
  "Return the buffer position of the LSP POSITION plist."
  (eglot--lsp-position-to-point position))

(defun orrery--lens-action (command arguments)
  "Return a command running the code lens COMMAND with ARGUMENTS."
  (lambda ()
    (interactive)
    (pcase command
      ("orrery.inspectState"
       (pop-to-buffer (orrery-inspect (and (> (length arguments) 0)
                                           (aref arguments 0)))))
      ;; Client-side: the argument is a launch configuration.
      ("orrery.debugTest"
       (orrery-debug-test-start (and (> (length arguments) 0)
                                     (aref arguments 0))))
      (_ (orrery-request :workspace/executeCommand
                         (list :command command :arguments arguments))))))

(defun orrery--lens-string (command)
  "Return the text showing the code lens COMMAND."
  (let ((title (plist-get command :title))
        (cmd (plist-get command :command)))
    (if (or (null cmd) (string-empty-p cmd))
        (propertize title 'face 'orrery-lens-face)
      (let ((map (make-sparse-keymap))
            (action (orrery--lens-action cmd (plist-get command :arguments))))
        (define-key map [mouse-1] action)
        (define-key map (kbd "RET") action)
        (propertize title 'face 'orrery-lens-button-face
                    'mouse-face 'highlight 'keymap map
                    'help-echo (format "mouse-1: %s" title))))))

(defun orrery--paint-lenses (lenses)
  "Show LENSES (textDocument/codeLens results) above their lines."
  (save-excursion
    (save-restriction
      (widen)
      (orrery--clear-overlays 'orrery-lens)
      (let ((lines (make-hash-table)))
        (seq-doseq (lens lenses)
          (when-let ((cmd (plist-get lens :command)))
            (push cmd (gethash (plist-get (plist-get (plist-get lens :range) :start)
                                          :line)
                               lines))))
        (maphash
         (lambda (line cmds)
           (goto-char (point-min))
           (when (zerop (forward-line line))
             (let* ((bol (point))
                    (indent (buffer-substring-no-properties
                             bol (progn (back-to-indentation) (point))))
                    (ov (make-overlay bol bol nil t nil)))
               (overlay-put ov 'orrery-lens t)
               (overlay-put ov 'orrery-text
                            (mapconcat (lambda (c) (plist-get c :title))
                                       (reverse cmds) " | "))
               (overlay-put ov 'before-string
                            (concat indent
                                    (mapconcat #'orrery--lens-string
                                               (reverse cmds)
                                               (propertize " | " 'face
                                                           'orrery-lens-face))
                                    "\n")))))
         lines)))))

(defun orrery--hint-label (hint)
  "Return the text of the inlay HINT."
  (let ((label (plist-get hint :label)))
    (if (stringp label) label
      (mapconcat (lambda (part) (plist-get part :value)) label ""))))

(defun orrery--paint-hints (hints)
  "Show inlay HINTS as overlays of this package."
  (save-excursion
    (save-restriction
      (widen)
      (orrery--clear-overlays 'orrery-hint)
      (seq-doseq (hint hints)
        (let* ((pos (orrery--lsp-point (plist-get hint :position)))
               (text (orrery--hint-label hint))
               (ov (make-overlay pos pos nil nil nil)))
          (overlay-put ov 'orrery-hint t)
          (overlay-put ov 'orrery-text text)
          (overlay-put ov 'after-string
                       (propertize text 'face 'orrery-hint-face)))))))

(defun orrery--own-hints-p ()
  "Return non-nil if this package draws the inlay hints in this buffer.
With `auto', that is unless eglot runs Orrery and can draw them (29+)."
  (pcase orrery-hint-overlays
    ('auto (not (and (fboundp 'eglot-inlay-hints-mode)
                     (eq (orrery--server-kind (orrery--server t)) 'eglot))))
    (value value)))

(defun orrery--own-lenses-p ()
  "Return non-nil if this package draws the code lenses in this buffer.
Not where lsp-mode shows the add-on's lenses itself (`lsp-lens-mode')."
  (and orrery-live-overlays
       (not (and (eq (orrery--server-kind (orrery--server t)) 'lsp-mode)
                 (bound-and-true-p lsp-lens-mode)))))

(defun orrery--fetch (kind method params paint)
  "Request METHOD with PARAMS for this buffer, then call PAINT on the result.
KIND (`lenses' or `hints') names the request: only one of a kind is
in flight per buffer and server.  Asking again meanwhile fetches
once more when the answer arrives, so no refresh is lost; a request
unanswered for twice `orrery-request-timeout' no longer counts."
  (let* ((buf (current-buffer))
         (server (orrery--server t))
         (entry (alist-get kind orrery--inflight)))
    (cond
     ((null server))
     ((and entry (eq (car entry) server)
           (< (float-time (time-since (nth 1 entry)))
              (* 2 orrery-request-timeout)))
      (setcar (nthcdr 2 entry) t))
     (t
      (setf (alist-get kind orrery--inflight) (list server (current-time) nil))
      (let ((done
             (lambda (&rest _)
               (when (buffer-live-p buf)
                 (with-current-buffer buf
                   (let ((e (alist-get kind orrery--inflight)))
                     (when (eq (car e) server)
                       (setf (alist-get kind orrery--inflight nil t) nil)
                       (when (and (nth 2 e) orrery-live-mode)
                         (orrery--refresh-buffer kind)))))))))
        (orrery--async-request
         server method params
         :success-fn (lambda (result)
                       (when (buffer-live-p buf)
                         (with-current-buffer buf
                           (when orrery-live-mode (funcall paint result))))
                       (funcall done))
         :error-fn done
         :timeout-fn done
         :timeout orrery-request-timeout
         :deferred (intern (format "orrery-%s" kind))))))))

(defun orrery--refresh-eglot-hints ()
  "Ask eglot to fetch this buffer's inlay hints again.
Eglot requests hints for what jit-lock displays, and does not handle
the server's refresh request itself: ask again for the visible part
now, and let jit-lock ask for the rest when it is displayed."
  (when (bound-and-true-p eglot-inlay-hints-mode)
    (save-restriction
      (widen)
      (let ((windows (and (fboundp 'eglot--update-hints-1)
                          (get-buffer-window-list (current-buffer) nil t))))
        (if (null windows)
            (jit-lock-refontify)
          (let ((from (point-max)) (to (point-min)))
            (dolist (w windows)
              (let ((start (window-start w)) (end (window-end w t)))
                (setq from (min from start) to (max to end))
                (eglot--update-hints-1 start end)))
            (when (> from (point-min)) (jit-lock-refontify (point-min) from))
            (when (< to (point-max)) (jit-lock-refontify to (point-max)))))))))

(defun orrery--refresh-buffer (&optional what)
  "Fetch live values for the current buffer and show them.
WHAT is `lenses', `hints' or nil for both."
  (when (and orrery-live-mode (orrery--server t))
    (when (and (orrery--own-lenses-p) (memq what '(nil lenses)))
      (orrery--fetch 'lenses :textDocument/codeLens
                     (list :textDocument (eglot--TextDocumentIdentifier))
                     #'orrery--paint-lenses))
    (when (memq what '(nil hints))
      (if (orrery--own-hints-p)
          (orrery--fetch 'hints :textDocument/inlayHint
                         (list :textDocument (eglot--TextDocumentIdentifier)
                               :range (list :start '(:line 0 :character 0)
                                            :end (save-restriction
                                                   (widen)
                                                   (eglot--pos-to-lsp-position
                                                    (point-max)))))
                         #'orrery--paint-hints)
        (orrery--refresh-eglot-hints)))))

(defun orrery--live-buffers (&optional server)
  "Return the buffers in `orrery-live-mode', only SERVER's if given."
  (seq-filter (lambda (b)
                (with-current-buffer b
                  (and orrery-live-mode
                       (or (null server) (eq (orrery--buffer-server) server)))))
              (buffer-list)))

(defun orrery--schedule-refresh (server what)
  "Refresh WHAT in SERVER's buffers soon, outside the current request."
  (run-at-time 0 nil
               (lambda ()
                 (dolist (b (orrery--live-buffers server))
                   (with-current-buffer b (orrery--refresh-buffer what))))))

(defvar orrery--timer nil
  "The timer refreshing live overlays, see `orrery-refresh-interval'.")

(defun orrery--tick ()
  "Refresh every live buffer, and the servers' status."
  (let ((buffers (orrery--live-buffers)))
    (if (null buffers)
        (orrery--stop-timer)
      (dolist (server (orrery--all-servers))
        (orrery--fetch-status server))
      (dolist (b buffers)
        (with-current-buffer b
          (if (orrery--server-p (orrery--buffer-server))
              (orrery--refresh-buffer)
            (orrery-live-mode -1)))))))

(defun orrery--stop-timer ()
  "Stop the refresh timer."
  (when orrery--timer
    (cancel-timer orrery--timer)
    (setq orrery--timer nil)))

(defun orrery--start-timer ()
  "Start the refresh timer, per `orrery-refresh-interval'."
  (when (and orrery-refresh-interval (null orrery--timer))
    (setq orrery--timer (run-at-time orrery-refresh-interval
                                     orrery-refresh-interval
                                     #'orrery--tick))))

(defun orrery--fetch-status (server)
  "Update SERVER's cached status asynchronously, for the mode line."
  (orrery--async-request
   server :orrery/status nil
   :success-fn (lambda (status)
                 (setf (orrery--server-status server) status)
                 (force-mode-line-update t))
   :error-fn #'ignore
   :timeout-fn #'ignore
   :timeout orrery-request-timeout))

(defun orrery--lighter ()
  "Return the mode line text of `orrery-live-mode'."
  (let* ((server (orrery--buffer-server))
         (status (orrery--server-status server)))
    (cond ((null status) " Orrery")
          ((eq (plist-get status :attached) t)
           (format " Orrery[%s]" (or (plist-get status :node) "attached")))
          (t " Orrery[detached]"))))

;;;###autoload
(define-minor-mode orrery-live-mode
  "Show live values of the attached node in this Elixir buffer.
Overlays above lines show what code lenses would (process counts,
loaded versions, call counts); on Emacs 28 inlay hints are drawn as
overlays too.  Values refresh when the server says they changed, and
every `orrery-refresh-interval' seconds.  Turned on where Orrery runs:
buffers eglot manages with Orrery, `orrery-companion-mode' buffers and
lsp-mode buffers with Orrery's add-on client."
  :lighter (:eval (orrery--lighter))
  (cond
   (orrery-live-mode
    (if (not (orrery--server t))
        (progn (setq orrery-live-mode nil)
               (user-error "Orrery-live-mode needs an Orrery connection (M-x orrery-ensure)"))
      (orrery--start-timer)
      (orrery--fetch-status (orrery--server))
      (orrery--refresh-buffer)))
   (t
    (setq orrery--inflight nil)
    (orrery--clear-overlays 'orrery-lens)
    (orrery--clear-overlays 'orrery-hint))))

(defun orrery--managed-mode-hook ()
  "Turn `orrery-live-mode' on or off to follow eglot's management of the buffer."
  (cond
   ((and (bound-and-true-p eglot--managed-mode)
         (orrery--server-p (eglot-current-server)))
    (unless orrery-live-mode (orrery-live-mode 1)))
   ;; Eglot leaving the buffer ends live values from eglot's Orrery, but leaves a
   ;; companion (or lsp-mode's add-on) alone.
   ((and orrery-live-mode
         (not (let ((s (run-hook-with-args-until-success
                        'orrery--buffer-server-functions)))
                (and s (orrery--server-p s)))))
    (orrery-live-mode -1))))


(defun orrery-refresh ()
  "Fetch live values for the current buffer now."
  (interactive)
  (unless orrery-live-mode (orrery-live-mode 1))
  (orrery--refresh-buffer))

(provide 'orrery-live)
;;; orrery-live.el ends here
