;;; orrery-companion.el --- Orrery over its own connection, beside eglot  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 The Orrery authors

;; Author: The Orrery authors
;; Maintainer: The Orrery authors
;; Keywords: languages, tools, processes
;; URL: https://github.com/orrery-lsp/orrery
;; SPDX-License-Identifier: MIT

;; This file is not part of GNU Emacs.

;;; Commentary:

;; Eglot runs one server per buffer, and that server should stay the
;; user's own (Expert, ElixirLS, Lexical, Next LS).  `orrery-companion-mode'
;; runs "orrery lsp" beside it, over a `jsonrpc' connection of its own
;; (one per mix project, shared by the project's buffers):
;;
;; - it sends the buffer to Orrery (didOpen, full-text didChange after a
;;   short idle time or before any request, didSave, which hot-swaps the
;;   module, didClose);
;; - hover: an `eldoc-documentation-functions' entry with Orrery's live
;;   hover (state, processes, call counts), composed with eglot's own
;;   hover (`orrery-eldoc-compose');
;; - inlay hints and code lenses as overlays (`orrery-live-mode');
;; - the diagnostics of its compile on save in flymake
;;   (`orrery-flymake-backend', beside eglot's own backend);
;; - the commands of orrery.el (status, inspect, processes, rollback,
;;   attach, doctor) and of orrery-debug.el work on this connection.
;;
;; Orrery's static features (symbols, definition, completion) are off on
;; this connection (`orrery-static-features'): the user's server answers
;; those.  Part of the orrery package; see orrery.el.

;;; Code:

(require 'cl-lib)
(require 'seq)
(require 'subr-x)
(require 'jsonrpc)
(require 'eglot)
(require 'eldoc)
(require 'flymake)
(require 'orrery)

(declare-function orrery-live-mode "orrery-live" (&optional arg))
(declare-function orrery--schedule-refresh "orrery-live" (server what))
(declare-function eglot--format-markup "eglot" (markup))
(defvar orrery-live-mode)
(defvar orrery-companion-mode)

(defcustom orrery-eldoc-compose t
  "Non-nil means eldoc shows every hover: the user's server's and Orrery's.
`orrery-companion-mode' then sets `eldoc-documentation-strategy' to
`eldoc-documentation-compose' in its buffers; otherwise eldoc's
strategy decides (eglot 1.9's shows one of them only)."
  :type 'boolean
  :group 'orrery)

(defcustom orrery-companion-change-delay 0.3
  "Idle seconds after an edit before the buffer's text goes to Orrery.
Requests send pending changes first, whatever the delay."
  :type 'number
  :group 'orrery)

(defclass orrery-connection (jsonrpc-process-connection)
  ((root :initarg :root :reader orrery--connection-root
         :documentation "The mix project root this connection serves.")
   (buffers :initform nil :accessor orrery--connection-buffers
            :documentation "The buffers open on this connection."))
  :documentation "A companion connection to `orrery lsp', beside eglot.")

(defvar orrery--connections (make-hash-table :test #'equal)
  "Companion connections by project root.")

(defvar-local orrery--companion nil
  "The companion connection of this buffer.")

(defvar-local orrery--companion-version 0
  "The version of this buffer's text last sent to Orrery.")

(defvar-local orrery--companion-dirty nil
  "Non-nil when this buffer changed since its text was last sent.")

(defvar-local orrery--companion-timer nil
  "The idle timer sending this buffer's changes.")

;;;; The connection as an Orrery server (see orrery.el)

(cl-defmethod orrery--running-p ((server orrery-connection))
  "Return non-nil if the companion SERVER is running."
  (jsonrpc-running-p server))

(cl-defmethod orrery--server-root ((server orrery-connection))
  "Return the project root of the companion SERVER."
  (orrery--connection-root server))

(cl-defmethod orrery--server-kind ((_server orrery-connection))
  "Companion connections are `companion'."
  'companion)

(cl-defmethod orrery--flush-changes ((_server orrery-connection))
  "Send the current buffer's pending edits to Orrery (SERVER)."
  (orrery--companion-send-change))

(cl-defmethod orrery--reconnect ((server orrery-connection))
  "Restart the companion SERVER and reopen its buffers on the new one."
  (let ((buffers (seq-filter #'buffer-live-p (orrery--connection-buffers server))))
    (dolist (b buffers)
      (with-current-buffer b (orrery-companion-mode -1)))
    (orrery--companion-shutdown server)
    (dolist (b buffers)
      (with-current-buffer b (orrery-companion-mode 1)))))

(defun orrery--companion-buffer-server ()
  "Return this buffer's companion connection, if any."
  (and orrery-companion-mode orrery--companion))

(defun orrery--companion-servers ()
  "Return the running companion connections."
  (let (all)
    (maphash (lambda (_ c) (push c all)) orrery--connections)
    all))

(add-hook 'orrery--buffer-server-functions #'orrery--companion-buffer-server)
(add-hook 'orrery--servers-functions #'orrery--companion-servers)

;;;; Messages from Orrery

(defun orrery--companion-request (conn method params)
  "Answer Orrery's request METHOD with PARAMS on CONN."
  (pcase method
    ('workspace/configuration
     (apply #'vector
            (mapcar (lambda (item)
                      (and (equal (plist-get item :section) "orrery")
                           (orrery-settings t)))
                    (plist-get params :items))))
    ('workspace/codeLens/refresh (orrery--schedule-refresh conn 'lenses) nil)
    ('workspace/inlayHint/refresh (orrery--schedule-refresh conn 'hints) nil)
    ((or 'window/workDoneProgress/create 'client/registerCapability
         'client/unregisterCapability 'window/showMessageRequest)
     nil)
    (_ (signal 'jsonrpc-error
               (list :code -32601 :message (format "%s: not handled" method))))))

(defun orrery--companion-notification (conn method params)
  "Handle Orrery's notification METHOD with PARAMS on CONN."
  (pcase method
    ('window/showMessage
     (let ((msg (plist-get params :message)))
       (message "%s" (if (string-prefix-p "Orrery" msg) msg (concat "Orrery: " msg)))))
    ;; Warnings and errors only: a save that did not compile says so here.
    ('window/logMessage
     (when (memq (plist-get params :type) '(1 2))
       (let ((msg (plist-get params :message)))
         (message "%s" (if (string-prefix-p "Orrery" msg) msg (concat "Orrery: " msg))))))
    ('textDocument/publishDiagnostics
     (orrery--companion-diagnostics conn params))
    (_ nil)))

;;;; Diagnostics of saves (compile errors and warnings), through flymake

(defvar-local orrery--companion-diags nil
  "The diagnostics Orrery last published for this buffer (LSP plists).")

(defvar-local orrery--companion-report nil
  "Flymake's report function for `orrery-flymake-backend', once it asked.")

(defun orrery--companion-diagnostics (conn params)
  "Keep the diagnostics PARAMS for the buffer of CONN they are about."
  (let ((uri (plist-get params :uri)))
    (dolist (b (orrery--connection-buffers conn))
      (when (and (buffer-live-p b)
                 (with-current-buffer b
                   (and buffer-file-name (equal (orrery--uri buffer-file-name) uri))))
        (with-current-buffer b
          (setq orrery--companion-diags (append (plist-get params :diagnostics) nil))
          (orrery--companion-report-diags))))))

(defun orrery--companion-report-diags ()
  "Give this buffer's diagnostics to flymake."
  (when (and orrery--companion-report (bound-and-true-p flymake-mode))
    (funcall orrery--companion-report
             (mapcar
              (lambda (d)
                (let* ((range (plist-get d :range))
                       (beg (eglot--lsp-position-to-point (plist-get range :start)))
                       (end (eglot--lsp-position-to-point (plist-get range :end))))
                  (when (<= end beg)
                    (setq end (min (point-max) (1+ beg))))
                  (flymake-make-diagnostic
                   (current-buffer) beg end
                   (pcase (plist-get d :severity)
                     (1 :error) (2 :warning) (_ :note))
                   (concat "Orrery: " (plist-get d :message)))))
              orrery--companion-diags))))

(defun orrery-flymake-backend (report-fn &rest _)
  "A flymake backend with the diagnostics of Orrery's compile on save.
REPORT-FN is flymake's callback."
  (setq orrery--companion-report report-fn)
  (orrery--companion-report-diags))

;;;; Starting and stopping

(defun orrery--uri (file)
  "Return the file URI of FILE, as eglot sends it."
  (let ((f (if (fboundp 'eglot-path-to-uri) 'eglot-path-to-uri 'eglot--path-to-uri)))
    (funcall f (expand-file-name file))))

(defun orrery--companion-connect (root)
  "Start `orrery lsp' for the mix project ROOT and initialize it.
Return the connection."
  (let* ((default-directory root)
         (name (format "orrery[%s]" (file-name-nondirectory (directory-file-name root))))
         (process
          (make-process
           :name name :command (list (orrery--executable) "lsp")
           :connection-type 'pipe :coding 'utf-8-emacs-unix :noquery t
           :stderr (get-buffer-create (format " *%s stderr*" name))))
         (conn (make-instance
                'orrery-connection :name name :process process :root root
                :request-dispatcher #'orrery--companion-request
                :notification-dispatcher #'orrery--companion-notification
                :on-shutdown #'orrery--companion-on-shutdown)))
    (puthash root conn orrery--connections)
    (condition-case err
        (orrery--request-sync
         conn :initialize
         (list :processId (emacs-pid)
               :clientInfo (list :name "orrery-companion" :version emacs-version)
               :rootUri (orrery--uri root)
               :workspaceFolders (vector (list :uri (orrery--uri root)
                                               :name (file-name-nondirectory
                                                      (directory-file-name root))))
               :initializationOptions (orrery-settings t)
               :capabilities
               (list :workspace (list :configuration t
                                      :codeLens '(:refreshSupport t)
                                      :inlayHint '(:refreshSupport t))
                     :textDocument (list :synchronization '(:didSave t)
                                         :hover '(:contentFormat ["markdown" "plaintext"])
                                         :inlayHint '(:dynamicRegistration :json-false)
                                         :codeLens '(:dynamicRegistration :json-false)))))
      (error (orrery--companion-shutdown conn)
             (signal (car err) (cdr err))))
    (jsonrpc-notify conn :initialized (make-hash-table))
    conn))

(defun orrery--companion-on-shutdown (conn)
  "Forget CONN, which ended, and leave its buffers."
  (remhash (orrery--connection-root conn) orrery--connections)
  (dolist (b (orrery--connection-buffers conn))
    (when (buffer-live-p b)
      (with-current-buffer b
        (when (eq orrery--companion conn)
          (orrery-companion-mode -1))))))

(defun orrery--companion-shutdown (conn)
  "Shut CONN down: Orrery detaches (leaving the node as found) and exits."
  (when (jsonrpc-running-p conn)
    (ignore-errors (orrery--request-sync conn :shutdown nil))
    (ignore-errors (jsonrpc-notify conn :exit nil))
    (let ((proc (jsonrpc--process conn))
          (deadline (+ (float-time) 10)))
      (while (and (process-live-p proc) (< (float-time) deadline))
        (accept-process-output proc 0.05))))
  (remhash (orrery--connection-root conn) orrery--connections)
  (ignore-errors (jsonrpc-shutdown conn)))

;;;###autoload
(defun orrery-companion-shutdown-all ()
  "Shut every companion connection down."
  (interactive)
  (dolist (c (orrery--companion-servers))
    (orrery--companion-shutdown c)))

(add-hook 'kill-emacs-hook #'orrery-companion-shutdown-all)

;;;; Document sync

(defun orrery--companion-tdi ()
  "Return the current buffer's TextDocumentIdentifier."
  (list :uri (orrery--uri buffer-file-name)))

(defun orrery--companion-text ()
  "Return the current buffer's whole text."
  (save-restriction (widen) (buffer-substring-no-properties (point-min) (point-max))))

(defun orrery--companion-send-change ()
  "Send the current buffer's text to Orrery if it changed."
  (when (and orrery--companion-dirty orrery--companion
             (jsonrpc-running-p orrery--companion))
    (setq orrery--companion-dirty nil)
    (cl-incf orrery--companion-version)
    (jsonrpc-notify orrery--companion :textDocument/didChange
                    (list :textDocument
                          (append (orrery--companion-tdi)
                                  (list :version orrery--companion-version))
                          :contentChanges
                          (vector (list :text (orrery--companion-text)))))))

(defun orrery--companion-after-change (&rest _)
  "Note a change, and send it once Emacs is idle."
  (setq orrery--companion-dirty t)
  (unless orrery--companion-timer
    (let ((buf (current-buffer)))
      (setq orrery--companion-timer
            (run-with-idle-timer
             orrery-companion-change-delay nil
             (lambda ()
               (when (buffer-live-p buf)
                 (with-current-buffer buf
                   (setq orrery--companion-timer nil)
                   (orrery--companion-send-change)))))))))

(defun orrery--companion-after-save ()
  "Tell Orrery the buffer was saved: it compiles and hot-swaps it."
  (orrery--companion-send-change)
  (when (and orrery--companion (jsonrpc-running-p orrery--companion))
    (jsonrpc-notify orrery--companion :textDocument/didSave
                    (list :textDocument (orrery--companion-tdi)))))

(defun orrery--companion-close ()
  "Tell Orrery the buffer is closed."
  (when (and orrery--companion (jsonrpc-running-p orrery--companion))
    (setf (orrery--connection-buffers orrery--companion)
          (delq (current-buffer) (orrery--connection-buffers orrery--companion)))
    (jsonrpc-notify orrery--companion :textDocument/didClose
                    (list :textDocument (orrery--companion-tdi)))))

;;;; Hover through eldoc

(defun orrery--hover-text (contents)
  "Return the hover CONTENTS (MarkupContent, MarkedString or a list) as text."
  (cond ((null contents) nil)
        ((stringp contents) contents)
        ((vectorp contents)
         (let ((parts (delq nil (mapcar #'orrery--hover-text contents))))
           (and parts (string-join parts "\n\n"))))
        ((plist-get contents :kind)
         (if (fboundp 'eglot--format-markup)
             (eglot--format-markup contents)
           (plist-get contents :value)))
        (t (plist-get contents :value))))

(defun orrery-eldoc-function (callback &rest _)
  "Ask Orrery for the live hover at point and give it to eldoc's CALLBACK.
An entry of `eldoc-documentation-functions' in `orrery-companion-mode'
buffers; the user's server's hover comes through eglot's own entry."
  (let ((conn orrery--companion)
        (buf (current-buffer)))
    (when (and conn (jsonrpc-running-p conn))
      (orrery--companion-send-change)
      (orrery--async-request
       conn :textDocument/hover
       (list :textDocument (orrery--companion-tdi)
             :position (eglot--pos-to-lsp-position))
       :success-fn (lambda (hover)
                     (let ((text (and hover (orrery--hover-text
                                             (plist-get hover :contents)))))
                       (if (and text (not (string-empty-p (string-trim text))))
                           (with-current-buffer (if (buffer-live-p buf) buf
                                                  (current-buffer))
                             (funcall callback text :echo (car (split-string text "\n"))))
                         (funcall callback nil))))
       :error-fn (lambda (&rest _) (funcall callback nil))
       :timeout-fn (lambda () (funcall callback nil))
       :timeout orrery-request-timeout)
      t)))

(defun orrery--companion-eldoc-setup ()
  "Put Orrery's hover into eldoc, and its diagnostics into flymake.
Both after the user's server's, beside them."
  (when orrery-companion-mode
    (add-hook 'flymake-diagnostic-functions #'orrery-flymake-backend 50 t)
    (add-hook 'eldoc-documentation-functions #'orrery-eldoc-function 50 t)
    (when orrery-eldoc-compose
      (setq-local eldoc-documentation-strategy #'eldoc-documentation-compose))
    (eldoc-mode 1)))

;; Eglot 1.9 replaces the buffer's eldoc functions when it manages the
;; buffer: put Orrery's back afterwards.
(add-hook 'eglot-managed-mode-hook #'orrery--companion-eldoc-setup)

;;;; The minor mode

;;;###autoload
(define-minor-mode orrery-companion-mode
  "Run Orrery for this Elixir buffer over a connection of its own.
Eglot (or lsp-mode) keeps the buffer's language server, such as
Expert or ElixirLS; Orrery adds the running app: live hovers in
eldoc, inlay hints and code lenses as overlays (`orrery-live-mode'),
hot swap on save, and the commands in variable `orrery-command-map'.  One
connection serves each mix project; Orrery's static features are off
on it (`orrery-static-features')."
  :lighter nil
  (cond
   (orrery-companion-mode
    (let ((root (and buffer-file-name
                     (orrery--mix-root (file-name-directory buffer-file-name)))))
      (if (null root)
          (progn (setq orrery-companion-mode nil)
                 (user-error "Orrery: %s is in no mix project" (buffer-name)))
        (setq root (file-name-as-directory (expand-file-name root)))
        (let ((conn (gethash root orrery--connections)))
          (unless (and conn (jsonrpc-running-p conn))
            (setq conn (orrery--companion-connect root)))
          (setq orrery--companion conn
                orrery--companion-version 0
                orrery--companion-dirty nil)
          (cl-pushnew (current-buffer) (orrery--connection-buffers conn))
          (jsonrpc-notify conn :textDocument/didOpen
                          (list :textDocument
                                (append (orrery--companion-tdi)
                                        (list :languageId "elixir"
                                              :version 0
                                              :text (orrery--companion-text)))))
          (add-hook 'after-change-functions #'orrery--companion-after-change nil t)
          (add-hook 'after-save-hook #'orrery--companion-after-save nil t)
          (add-hook 'kill-buffer-hook #'orrery--companion-close nil t)
          (orrery--companion-eldoc-setup)
          (orrery-live-mode 1)))))
   (t
    (remove-hook 'after-change-functions #'orrery--companion-after-change t)
    (remove-hook 'after-save-hook #'orrery--companion-after-save t)
    (remove-hook 'kill-buffer-hook #'orrery--companion-close t)
    (remove-hook 'eldoc-documentation-functions #'orrery-eldoc-function t)
    (remove-hook 'flymake-diagnostic-functions #'orrery-flymake-backend t)
    (when orrery--companion-timer
      (cancel-timer orrery--companion-timer)
      (setq orrery--companion-timer nil))
    (when (bound-and-true-p orrery-live-mode) (orrery-live-mode -1))
    (orrery--companion-close)
    (setq orrery--companion nil))))

(provide 'orrery-companion)
;;; orrery-companion.el ends here
