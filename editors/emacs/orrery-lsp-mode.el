;;; orrery-lsp-mode.el --- Orrery as an lsp-mode add-on client  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 The Orrery authors

;; Author: The Orrery authors
;; Maintainer: The Orrery authors
;; Keywords: languages, tools, processes
;; URL: https://github.com/orrery-lsp/orrery
;; SPDX-License-Identifier: MIT

;; This file is not part of GNU Emacs.

;;; Commentary:

;; Loaded by orrery.el once lsp-mode is: registers "orrery lsp" as an
;; lsp-mode client with `:add-on? t', so lsp-mode starts it in Elixir
;; buffers beside the user's own server (elixir-ls, Expert, Lexical,
;; Next LS) instead of choosing one of them.  lsp-mode merges the hovers
;; of both and shows Orrery's code lenses (`lsp-lens-mode');
;; `orrery-live-mode' adds the inlay hints as overlays, and the commands
;; of orrery.el work on the add-on's workspace.  Orrery's static
;; features are off on it (`orrery-static-features').  `orrery-client'
;; `auto' or `lsp-mode' activates it.  Part of the orrery package; see
;; orrery.el.

;;; Code:

(require 'cl-lib)
(require 'seq)
(require 'lsp-mode)
(require 'orrery)

(declare-function orrery-live-mode "orrery-live" (&optional arg))
(declare-function orrery--schedule-refresh "orrery-live" (server what))
(declare-function orrery-companion-mode "orrery-companion" (&optional arg))
(declare-function lsp--lens-on-refresh "lsp-lens" (workspace))
(defvar orrery-live-mode)
(defvar lsp-lens-enable)

(defun orrery-lsp--workspace-p (workspace)
  "Return non-nil if WORKSPACE is one of Orrery's add-on client."
  (eq (lsp--client-server-id (lsp--workspace-client workspace)) 'orrery))

;;;; The workspace as an Orrery server (see orrery.el)

(cl-defmethod orrery--running-p ((server lsp--workspace))
  "Return non-nil if the `lsp-mode' workspace SERVER is Orrery's, running."
  (and (orrery-lsp--workspace-p server)
       (memq (lsp--workspace-status server) '(initialized starting))))

(cl-defmethod orrery--server-root ((server lsp--workspace))
  "Return the root of the `lsp-mode' workspace SERVER."
  (file-name-as-directory (lsp--workspace-root server)))

(cl-defmethod orrery--server-kind ((_server lsp--workspace))
  "Return `lsp-mode', the kind of workspaces of `lsp-mode'."
  'lsp-mode)

(cl-defmethod orrery--flush-changes ((_server lsp--workspace))
  "Do nothing: `lsp-mode' sends the edits itself."
  nil)

(cl-defmethod orrery--reconnect ((server lsp--workspace))
  "Restart the add-on's workspace SERVER."
  (lsp-workspace-restart server))

(defun orrery-lsp--plist (value)
  "Return the JSON VALUE parsed by `lsp-mode' (hash tables) as plists."
  (cond ((hash-table-p value)
         (let (plist)
           (maphash (lambda (k v)
                      (setq plist (cons (orrery-lsp--plist v)
                                        (cons (intern (concat ":" k)) plist))))
                    value)
           (nreverse plist)))
        ((vectorp value) (apply #'vector (mapcar #'orrery-lsp--plist value)))
        ((and (consp value) (keywordp (car value)))
         (cl-loop for (k v) on value by #'cddr
                  append (list k (orrery-lsp--plist v))))
        ;; Lsp-mode's merge turns a result array into a list.
        ((consp value) (apply #'vector (mapcar #'orrery-lsp--plist value)))
        (t value)))

(cl-defmethod orrery--async-request ((server lsp--workspace) method params
                                     &rest args)
  "Send METHOD with PARAMS to the `lsp-mode' workspace SERVER.
ARGS as for `jsonrpc-async-request': :success-fn, :error-fn,
:timeout-fn and :timeout (others are ignored)."
  (let* ((success (plist-get args :success-fn))
         (error-fn (plist-get args :error-fn))
         (timeout-fn (plist-get args :timeout-fn))
         (done nil)
         (timer (run-at-time (or (plist-get args :timeout) orrery-request-timeout) nil
                             (lambda ()
                               (unless done
                                 (setq done t)
                                 (when timeout-fn (funcall timeout-fn)))))))
    (with-lsp-workspace server
      (lsp-request-async
       (substring (symbol-name method) 1) params
       (lambda (result)
         (unless done
           (setq done t)
           (cancel-timer timer)
           (when success (funcall success (orrery-lsp--plist result)))))
       :mode 'detached
       :error-handler (lambda (err)
                        (unless done
                          (setq done t)
                          (cancel-timer timer)
                          (when error-fn (funcall error-fn (orrery-lsp--plist err)))))))
    nil))

(defun orrery-lsp--buffer-server ()
  "Return this buffer's Orrery workspace of `lsp-mode', if any."
  (and (bound-and-true-p lsp-mode)
       (seq-find #'orrery-lsp--workspace-p (lsp-workspaces))))

(defun orrery-lsp--servers ()
  "Return the running `lsp-mode' workspaces of Orrery."
  (and (lsp-session)
       (seq-filter #'orrery-lsp--workspace-p (lsp--session-workspaces (lsp-session)))))

(defun orrery-lsp--beside ()
  "Return the other `lsp-mode' servers of this buffer."
  (and (bound-and-true-p lsp-mode)
       (mapcar (lambda (w)
                 (format "lsp-mode: %s" (lsp--client-server-id (lsp--workspace-client w))))
               (seq-remove #'orrery-lsp--workspace-p (lsp-workspaces)))))

(add-hook 'orrery--buffer-server-functions #'orrery-lsp--buffer-server)
(add-hook 'orrery--servers-functions #'orrery-lsp--servers)
(add-hook 'orrery--beside-functions #'orrery-lsp--beside)

;;;; The client

(defun orrery-lsp--activate-p (_file-name _mode)
  "Return non-nil if the add-on should run in the current buffer."
  (and (memq orrery-client '(auto lsp-mode))
       (not (bound-and-true-p orrery-companion-mode))
       (orrery--elixir-buffer-p)))

(defun orrery-lsp--refresh (what)
  "Return a request handler refreshing WHAT in the workspace's buffers."
  (lambda (workspace _params)
    (when (and (eq what 'lenses) (bound-and-true-p lsp-lens-enable)
               (fboundp 'lsp--lens-on-refresh))
      (lsp--lens-on-refresh workspace))
    (orrery--schedule-refresh workspace what)
    nil))

(defun orrery-lsp--after-open ()
  "Turn `orrery-live-mode' on where the add-on is running."
  (when (and (orrery-lsp--buffer-server) (not (bound-and-true-p orrery-live-mode)))
    (orrery-live-mode 1)))

(defun orrery-lsp--lsp-mode-hook ()
  "Turn a companion off where `lsp-mode' has the add-on (`orrery-client' `auto')."
  (when (and (bound-and-true-p lsp-mode) (eq orrery-client 'auto)
             (bound-and-true-p orrery-companion-mode))
    (orrery-companion-mode -1)))

(add-hook 'lsp-after-open-hook #'orrery-lsp--after-open)
(add-hook 'lsp-mode-hook #'orrery-lsp--lsp-mode-hook)

(dolist (mode (mapcar #'car orrery-eglot-modes))
  (add-to-list 'lsp-language-id-configuration (cons mode "elixir") t))

(lsp-register-client
 (make-lsp-client
  :new-connection (lsp-stdio-connection (lambda () (list (orrery--executable) "lsp")))
  :activation-fn #'orrery-lsp--activate-p
  :add-on? t
  :priority -2
  :server-id 'orrery
  :initialization-options (lambda () (orrery-settings t))
  :request-handlers
  (let ((h (make-hash-table :test #'equal)))
    (puthash "workspace/codeLens/refresh" (orrery-lsp--refresh 'lenses) h)
    (puthash "workspace/inlayHint/refresh" (orrery-lsp--refresh 'hints) h)
    h)))

(provide 'orrery-lsp-mode)
;;; orrery-lsp-mode.el ends here
