;;; orrery.el --- Live BEAM state for Elixir buffers, through eglot  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 The Orrery authors

;; Author: The Orrery authors
;; Maintainer: The Orrery authors
;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9") (jsonrpc "1.0.14"))
;; Keywords: languages, tools, processes
;; URL: https://github.com/orrery-lsp/orrery
;; SPDX-License-Identifier: MIT

;; This file is not part of GNU Emacs.

;;; Commentary:

;; Orrery is a language server and debug adapter for Elixir that
;; attaches to the running BEAM node of your project.  This package
;; connects Emacs to it:
;;
;; - registers "orrery lsp" in `eglot-server-programs' for `elixir-mode',
;;   `elixir-ts-mode' and the small fallback `orrery-elixir-mode' (used for
;;   .ex/.exs files only when no other Elixir mode is available);
;; - sends the node to attach to (`orrery-node', `orrery-cookie-file', ...)
;;   as initializationOptions and as the `orrery' configuration section;
;; - shows live values: inlay hints through eglot on Emacs 29+, and overlays
;;   with what code lenses would show (eglot never asks for code lenses):
;;   process counts, loaded versions, call counts, and on Emacs 28 the inlay
;;   hints too ("1 proc · %{count: 3}").  They are refreshed when the server
;;   says values changed and on a timer;
;; - commands: `orrery-attach', `orrery-status', `orrery-inspect',
;;   `orrery-processes', `orrery-rollback', `orrery-refresh', and, in
;;   orrery-debug.el, `orrery-step-back' and `orrery-reverse-continue' for
;;   dap-mode and dape sessions.
;;
;; Quick start:
;;
;;   (require 'orrery)
;;   (setq orrery-executable "/path/to/orrery")   ; unless it is on PATH
;;   (setq orrery-node "kv@myhost")                ; or nil: Orrery runs the app
;;   (add-hook 'elixir-mode-hook #'eglot-ensure)
;;
;; Without `orrery-node', Orrery starts the workspace's mix app itself as a
;; node, attaches to it, and stops it when Emacs disconnects.

;;; Code:

(require 'cl-lib)
(require 'seq)
(require 'subr-x)
(require 'jsonrpc)
(require 'eglot)
(require 'project)
(require 'tabulated-list)

(defvar eglot-inlay-hints-mode)         ; Emacs 29+ eglot only.
(defvar orrery-live-mode)
(declare-function eglot-inlay-hints-mode "eglot" (&optional arg))
(declare-function eglot--update-hints-1 "eglot" (from to))
(declare-function orrery-step-back "orrery-debug" ())
(declare-function orrery-reverse-continue "orrery-debug" ())

;;;; Customization

(defgroup orrery nil
  "Live state of a running BEAM node in Elixir buffers."
  :group 'languages
  :link '(url-link :tag "Homepage" "https://github.com/orrery-lsp/orrery")
  :prefix "orrery-")

(defcustom orrery-executable "orrery"
  "The Orrery binary: an absolute file name, or a program name.
A program name is looked up in the variable `exec-path'."
  :type 'string)

(defcustom orrery-node nil
  "The node to attach to, as name@host.
Nil means the embedded default: Orrery starts the workspace's mix
application as a node itself, attaches, and stops it on shutdown."
  :type '(choice (const :tag "Start the app (embedded default)" nil)
                 (string :tag "Node (name@host)")))

(defcustom orrery-cookie-file nil
  "A file holding the node's cookie.
Nil lets Orrery use ~/.erlang.cookie.  The cookie itself is never
sent through Emacs, so it never lands in eglot's event log."
  :type '(choice (const :tag "Default (~/.erlang.cookie)" nil) file))

(defcustom orrery-allow-writes 'default
  "Whether Orrery may change the node (hot swap, rollback, state changes).
The symbol `default' leaves the choice to Orrery: allowed for nodes
on this host, denied for remote ones."
  :type '(choice (const :tag "Orrery's default" default)
                 (const :tag "Allow" t)
                 (const :tag "Deny" nil)))

(defcustom orrery-refresh-ms nil
  "How often Orrery refreshes live values, in milliseconds.
Nil means Orrery's default (1000)."
  :type '(choice (const :tag "Default" nil) natnum))

(defcustom orrery-attach-peers 'default
  "Whether Orrery also attaches to the node's cluster peers."
  :type '(choice (const :tag "Orrery's default (yes)" default)
                 (const :tag "Yes" t)
                 (const :tag "No" nil)))

(defcustom orrery-inlay-hints '(calls processes ets)
  "Which inlay hints Orrery computes."
  :type '(set (const :tag "Call counts after def heads" calls)
              (const :tag "Processes and state after use GenServer" processes)
              (const :tag "ETS table sizes" ets)))

(defcustom orrery-live-overlays t
  "Non-nil means show live values as overlays in Elixir buffers.
These overlays show what code lenses would: process counts, loaded
versions and call counts, above the line they belong to."
  :type 'boolean)

(defcustom orrery-hint-overlays 'auto
  "Whether to draw Orrery's inlay hints as overlays of this package.
The symbol `auto' draws them only when eglot cannot (before Emacs 29),
t always, nil never."
  :type '(choice (const :tag "When eglot has no inlay hints" auto)
                 (const :tag "Always" t)
                 (const :tag "Never" nil)))

(defcustom orrery-refresh-interval 5
  "Seconds between timed refreshes of live overlays, or nil for none.
The server also asks for a refresh whenever a visible value
changes; the timer is a fallback."
  :type '(choice (const :tag "Only when the server asks" nil) number))

(defcustom orrery-request-timeout 15
  "Seconds to wait for Orrery's answer to a command."
  :type 'number)

(defcustom orrery-processes-limit 200
  "How many processes `orrery-processes' lists per node."
  :type 'natnum)

(defcustom orrery-mix-project-root t
  "Non-nil means the language server's root is the outermost mix project.
Eglot otherwise uses `project-current', which for a mix app inside a
larger repository is the repository root."
  :type 'boolean)

(defface orrery-lens-face
  '((t :inherit shadow :height 0.9))
  "Face of the live values shown above a line.")

(defface orrery-lens-button-face
  '((t :inherit (link orrery-lens-face) :underline nil))
  "Face of clickable entries among the live values.")

(defface orrery-hint-face
  '((t :inherit shadow :slant italic))
  "Face of inlay hints drawn by this package (Emacs 28).")

;;;; Fallback major mode

(defvar orrery-elixir-mode-syntax-table
  (let ((st (make-syntax-table)))
    (modify-syntax-entry ?# "<" st)
    (modify-syntax-entry ?\n ">" st)
    (modify-syntax-entry ?\" "\"" st)
    (modify-syntax-entry ?\' "\"" st)
    (modify-syntax-entry ?_ "_" st)
    (modify-syntax-entry ?? "_" st)
    (modify-syntax-entry ?! "_" st)
    (modify-syntax-entry ?: "'" st)
    (modify-syntax-entry ?@ "'" st)
    st)
  "Syntax table of `orrery-elixir-mode'.")

(defconst orrery-elixir-font-lock-keywords
  `((,(regexp-opt '("defmodule" "defprotocol" "defimpl" "def" "defp" "defmacro"
                    "defmacrop" "defguard" "defguardp" "defstruct" "defexception"
                    "defdelegate" "defoverridable")
                  'symbols)
     . font-lock-keyword-face)
    (,(regexp-opt '("do" "end" "fn" "case" "cond" "with" "if" "unless" "else"
                    "try" "catch" "rescue" "after" "receive" "when" "and" "or"
                    "not" "in" "import" "alias" "require" "use" "quote"
                    "unquote" "raise" "reraise" "throw" "for")
                  'symbols)
     . font-lock-keyword-face)
    ("\\_<def\\(?:p\\|macrop?\\|guardp?\\)?[ \t]+\\([a-z_][A-Za-z0-9_?!]*\\)"
     1 font-lock-function-name-face)
    ("\\_<[A-Z][A-Za-z0-9_]*\\(?:\\.[A-Z][A-Za-z0-9_]*\\)*" . font-lock-type-face)
    ("\\_<:[a-z_][A-Za-z0-9_?!@]*" . font-lock-constant-face)
    ("\\_<[a-z_][A-Za-z0-9_]*:\\(?:[ \t]\\|$\\)" . font-lock-constant-face)
    ("@[a-z_][A-Za-z0-9_]*" . font-lock-preprocessor-face))
  "Font lock keywords of `orrery-elixir-mode'.")

;;;###autoload
(define-derived-mode orrery-elixir-mode prog-mode "Elixir[orrery]"
  "A small major mode for Elixir, for when no other Elixir mode is installed.
It knows comments, strings and keywords and indents relative to the
previous line; install `elixir-mode' or use `elixir-ts-mode' for more."
  :syntax-table orrery-elixir-mode-syntax-table
  (setq-local comment-start "# ")
  (setq-local comment-start-skip "#+[ \t]*")
  (setq-local indent-line-function #'indent-relative)
  (setq-local indent-tabs-mode nil)
  (setq-local font-lock-defaults '(orrery-elixir-font-lock-keywords)))

(defun orrery--elixir-mode-available-p ()
  "Return non-nil when an Elixir major mode other than ours can be used."
  (or (fboundp 'elixir-mode)
      (and (fboundp 'elixir-ts-mode)
           (fboundp 'treesit-language-available-p)
           (treesit-language-available-p 'elixir))))

;;;###autoload
(unless (or (fboundp 'elixir-mode)
            (and (fboundp 'elixir-ts-mode)
                 (fboundp 'treesit-language-available-p)
                 (treesit-language-available-p 'elixir)))
  ;; Appended, so that any Elixir mode installed later wins.
  (add-to-list 'auto-mode-alist '("\\.exs?\\'" . orrery-elixir-mode) t))

;;;; Eglot integration

(defclass orrery-eglot-server (eglot-lsp-server)
  ((status :initform nil :accessor orrery--server-status
           :documentation "The last `orrery/status' answer, or nil."))
  :documentation "An eglot connection to Orrery's language server.")

(defun orrery--executable ()
  "Return the Orrery binary to run."
  (if (file-name-absolute-p orrery-executable)
      orrery-executable
    (or (executable-find orrery-executable) orrery-executable)))

;;;###autoload
(defun orrery-eglot-contact (&optional _interactive)
  "Return the eglot contact for Orrery's language server."
  (list 'orrery-eglot-server (orrery--executable) "lsp"))

;;;###autoload
(defconst orrery-eglot-modes
  '((elixir-mode :language-id "elixir")
    (elixir-ts-mode :language-id "elixir")
    (orrery-elixir-mode :language-id "elixir"))
  "Major modes eglot manages with Orrery, with their LSP language ids.")

;;;###autoload
(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs
               (cons orrery-eglot-modes #'orrery-eglot-contact)))

(defun orrery--elixir-buffer-p ()
  "Return non-nil if the current buffer is in one of `orrery-eglot-modes'."
  (apply #'derived-mode-p (mapcar #'car orrery-eglot-modes)))

(defun orrery--json-bool (value)
  "Return VALUE as a JSON boolean for jsonrpc."
  (if value t :json-false))

(defun orrery-settings ()
  "Return Orrery's settings from the customization group, as a JSON plist.
These go to the server as initializationOptions and as the `orrery'
section of workspace/configuration."
  (append
   (when orrery-node (list :node orrery-node))
   (when orrery-cookie-file
     (list :cookieFile (expand-file-name orrery-cookie-file)))
   (unless (eq orrery-allow-writes 'default)
     (list :allowWrites (orrery--json-bool orrery-allow-writes)))
   (when orrery-refresh-ms (list :refreshMs orrery-refresh-ms))
   (unless (eq orrery-attach-peers 'default)
     (list :attachPeers (orrery--json-bool orrery-attach-peers)))
   (list :inlayHints
         (list :calls (orrery--json-bool (memq 'calls orrery-inlay-hints))
               :processes (orrery--json-bool (memq 'processes orrery-inlay-hints))
               :ets (orrery--json-bool (memq 'ets orrery-inlay-hints))))))

(cl-defmethod eglot-initialization-options ((_server orrery-eglot-server))
  "Send Orrery's settings (see `orrery-settings') at initialization."
  (orrery-settings))

(cl-defmethod eglot-client-capabilities :around ((_server orrery-eglot-server))
  "Announce that we handle Orrery's code lens and inlay hint refresh requests."
  (let* ((caps (copy-sequence (cl-call-next-method)))
         (workspace (copy-sequence (plist-get caps :workspace))))
    (setq workspace (plist-put workspace :codeLens '(:refreshSupport t)))
    (setq workspace (plist-put workspace :inlayHint '(:refreshSupport t)))
    (plist-put caps :workspace workspace)))

(cl-defmethod eglot-handle-request
  ((_server orrery-eglot-server) (_method (eql workspace/configuration))
   &rest params)
  "Answer the `orrery' section from our settings unless the user set it.
PARAMS holds the configuration items; `eglot-workspace-configuration'
takes precedence when it has an `orrery' section."
  (let ((answers (cl-call-next-method))
        (items (plist-get params :items)))
    (apply #'vector
           (cl-loop for item across items
                    for answer across answers
                    collect (if (and (null answer)
                                     (equal (plist-get item :section) "orrery"))
                                (orrery-settings)
                              answer)))))

(cl-defmethod eglot-handle-request
  ((server orrery-eglot-server) (_method (eql workspace/codeLens/refresh))
   &rest _params)
  "Refresh live overlays of SERVER's buffers, as the server asks."
  (orrery--schedule-refresh server 'lenses)
  nil)

(cl-defmethod eglot-handle-request
  ((server orrery-eglot-server) (_method (eql workspace/inlayHint/refresh))
   &rest _params)
  "Refresh inlay hints of SERVER's buffers, as the server asks."
  (orrery--schedule-refresh server 'hints)
  ;; Let a future eglot that handles this request itself do so too.
  (ignore-error cl-no-next-method (cl-call-next-method))
  nil)

(defun orrery--server-p (server)
  "Return non-nil if SERVER is a live Orrery connection."
  (and server (cl-typep server 'orrery-eglot-server) (jsonrpc-running-p server)))

(defvar-local orrery--view-server nil
  "The Orrery server an Orrery view buffer belongs to.")

(defun orrery--all-servers ()
  "Return all live Orrery servers."
  (let (found)
    (maphash (lambda (_project servers)
               (dolist (s servers)
                 (when (orrery--server-p s) (push s found))))
             eglot--servers-by-project)
    found))

(defun orrery--server (&optional noerror)
  "Return the Orrery server for the current buffer.
That is the buffer's eglot server, the server of an Orrery view, or
the only running Orrery server.  Signal a `user-error' when there is
none, unless NOERROR."
  (or (and (orrery--server-p orrery--view-server) orrery--view-server)
      (let ((s (eglot-current-server))) (and (orrery--server-p s) s))
      (let ((all (orrery--all-servers))) (and (= (length all) 1) (car all)))
      (unless noerror
        (user-error "No Orrery connection here: open an Elixir file and \
run `eglot' or `orrery-attach'"))))

(defun orrery--error-message (err)
  "Return the server's message in the jsonrpc error ERR."
  (or (alist-get 'jsonrpc-error-message (cdr-safe err))
      (error-message-string err)))

(defun orrery--request-sync (server method params)
  "Send METHOD with PARAMS to SERVER, wait for the answer and return it.
Signal `jsonrpc-error' like `jsonrpc-request' when the server answers
with an error or not within `orrery-request-timeout' seconds.

Unlike `jsonrpc-request' in jsonrpc 1.0.14 (Emacs 28), this never
throws out of the process filter: that left the messages which came
in the same chunk as the answer (say a refresh request from the
server) unprocessed until the server wrote again."
  (let ((state nil) (result nil) (failure nil))
    (jsonrpc-async-request
     server method params
     :success-fn (lambda (r) (setq result r state 'done))
     :error-fn (lambda (e) (setq failure e state 'failed))
     :timeout-fn (lambda () (setq failure '(:message "Timed out") state 'failed))
     :timeout orrery-request-timeout)
    (while (null state)
      (accept-process-output nil 0.05))
    (when (eq state 'failed)
      (signal 'jsonrpc-error
              (list (format "Orrery: %s failed" method)
                    (cons 'jsonrpc-error-code (plist-get failure :code))
                    (cons 'jsonrpc-error-message (plist-get failure :message))
                    (cons 'jsonrpc-error-data (plist-get failure :data)))))
    result))

(defun orrery-request (method &optional params server)
  "Send METHOD with PARAMS to the Orrery SERVER and return the result.
SERVER defaults to `orrery--server'.  A server error becomes a
`user-error' carrying the server's message."
  (let ((server (or server (orrery--server))))
    (condition-case err
        (orrery--request-sync server method params)
      (jsonrpc-error
       (user-error "Orrery: %s" (orrery--error-message err))))))

;;;; Project root

(defun orrery--mix-root (dir)
  "Return the outermost directory above DIR holding a mix.exs, or nil."
  (let (root)
    (while (and dir (setq dir (locate-dominating-file dir "mix.exs")))
      (setq root dir
            dir (file-name-directory (directory-file-name dir)))
      (when (equal dir root) (setq dir nil)))
    root))

(defun orrery--project-find (dir)
  "Find the mix project of DIR for eglot, per `orrery-mix-project-root'."
  (when (and orrery-mix-project-root
             (bound-and-true-p eglot-lsp-context)
             (orrery--elixir-buffer-p))
    (when-let ((root (orrery--mix-root dir)))
      (cons 'orrery-mix (expand-file-name root)))))

(cl-defmethod project-root ((project (head orrery-mix)))
  "Return the root directory of the mix PROJECT."
  (cdr project))

(add-hook 'project-find-functions #'orrery--project-find)

(defun orrery--root ()
  "Return the root of the current Elixir project."
  (or (let ((s (orrery--server t))) (and s (project-root (eglot--project s))))
      (orrery--mix-root default-directory)
      (when-let ((p (project-current))) (project-root p))
      default-directory))

;;;; Live overlays

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
      ("orrery.inspectState" (orrery-inspect (and (> (length arguments) 0)
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
  "Return non-nil if this package draws the inlay hints in this buffer."
  (pcase orrery-hint-overlays
    ('auto (not (fboundp 'eglot-inlay-hints-mode)))
    (value value)))

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
        (jsonrpc-async-request
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
    (when (and orrery-live-overlays (memq what '(nil lenses)))
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
                       (or (null server) (eq (eglot-current-server) server)))))
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
          (if (orrery--server-p (eglot-current-server))
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
  (jsonrpc-async-request
   server :orrery/status nil
   :success-fn (lambda (status)
                 (setf (orrery--server-status server) status)
                 (force-mode-line-update t))
   :error-fn #'ignore
   :timeout-fn #'ignore
   :timeout orrery-request-timeout))

(defun orrery--lighter ()
  "Return the mode line text of `orrery-live-mode'."
  (let* ((server (eglot-current-server))
         (status (and (cl-typep server 'orrery-eglot-server)
                      (orrery--server-status server))))
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
every `orrery-refresh-interval' seconds.  Eglot turns this mode on in
buffers it manages with Orrery."
  :lighter (:eval (orrery--lighter))
  (cond
   (orrery-live-mode
    (if (not (orrery--server t))
        (progn (setq orrery-live-mode nil)
               (user-error "Orrery-live-mode needs an Orrery eglot connection"))
      (orrery--start-timer)
      (orrery--fetch-status (orrery--server))
      (orrery--refresh-buffer)))
   (t
    (setq orrery--inflight nil)
    (orrery--clear-overlays 'orrery-lens)
    (orrery--clear-overlays 'orrery-hint))))

(defun orrery--managed-mode-hook ()
  "Turn `orrery-live-mode' on or off to follow eglot's management of the buffer."
  (if (and (bound-and-true-p eglot--managed-mode)
           (orrery--server-p (eglot-current-server)))
      (unless orrery-live-mode (orrery-live-mode 1))
    (when orrery-live-mode (orrery-live-mode -1))))

(add-hook 'eglot-managed-mode-hook #'orrery--managed-mode-hook)

(defun orrery-refresh ()
  "Fetch live values for the current buffer now."
  (interactive)
  (unless orrery-live-mode (orrery-live-mode 1))
  (orrery--refresh-buffer))

;;;; Module at point

(defconst orrery--module-re "[A-Z][A-Za-z0-9_]*\\(?:\\.[A-Z][A-Za-z0-9_]*\\)*"
  "A module alias, such as KV.Bucket.")

(defun orrery-module-at-point ()
  "Return the module named at point, else the module around point, or nil."
  (save-excursion
    (or (let ((case-fold-search nil))
          (skip-chars-backward "A-Za-z0-9_.")
          (and (looking-at orrery--module-re)
               (match-string-no-properties 0)))
        (let ((case-fold-search nil))
          (and (re-search-backward
                (concat "^[ \t]*defmodule[ \t]+\\(" orrery--module-re "\\)")
                nil t)
               (match-string-no-properties 1))))))

(defun orrery--read-target (prompt)
  "Read a module, registered name or pid with PROMPT."
  (let ((default (orrery-module-at-point)))
    (read-string (if default (format "%s (default %s): " prompt default)
                   (format "%s: " prompt))
                 nil nil default)))

;;;; Commands

;;;###autoload
(defun orrery-attach (node &optional cookie-file)
  "Attach Orrery to NODE (name@host), reading the cookie from COOKIE-FILE.
An empty NODE means the embedded default: Orrery starts the mix app.
Reconnects this project's Orrery server, or starts one."
  (interactive
   (list (read-string (format "Attach to node (name@host, empty: start the app)%s: "
                              (if orrery-node (format " [%s]" orrery-node) ""))
                      nil nil orrery-node)
         (let ((f (read-file-name "Cookie file (a directory: keep the current one): "
                                  nil orrery-cookie-file t)))
           (and f (not (file-directory-p f)) f))))
  (setq orrery-node (and node (not (string-empty-p node)) node))
  (when cookie-file (setq orrery-cookie-file cookie-file))
  (let ((server (eglot-current-server)))
    (cond ((orrery--server-p server) (eglot-reconnect server))
          ((and buffer-file-name
                (orrery--elixir-buffer-p))
           (apply #'eglot (eglot--guess-contact)))
          (t (user-error "Open an Elixir file of the project first"))))
  (message "Orrery: attaching to %s" (or orrery-node "the app (started by Orrery)")))

(defun orrery--describe-status (status)
  "Return a one-line summary of the `orrery/status' answer STATUS."
  (let* ((state (plist-get status :status))
         (state (if (stringp state) state (plist-get state :state))))
    (if (eq (plist-get status :attached) t)
        (format "Orrery: attached to %s (%s%s%s)"
                (mapconcat
                 (lambda (n)
                   (let ((agent (plist-get n :agent)))
                     (format "%s: OTP %s, Elixir %s%s"
                             (plist-get n :name) (plist-get n :otp)
                             (plist-get n :elixir)
                             (cond ((stringp agent) (format ", agent %s" agent))
                                   ((eq agent t) ", agent loaded")
                                   (t ", no agent")))))
                 (plist-get status :nodes) "; ")
                (or (plist-get status :mode) "attach")
                (if (eq (plist-get status :allowWrites) t)
                    ", writes allowed" ", read-only")
                (if (plist-get status :managedPid)
                    (format ", app started by Orrery as pid %s"
                            (plist-get status :managedPid))
                  ""))
      (format "Orrery: not attached%s%s"
              (if state (format " (%s)" state) "")
              (if (plist-get status :reason)
                  (format ": %s" (plist-get status :reason))
                "")))))

;;;###autoload
(defun orrery-status ()
  "Show which nodes Orrery is attached to, and return the status plist."
  (interactive)
  (let* ((server (orrery--server))
         (status (orrery-request :orrery/status nil server)))
    (setf (orrery--server-status server) status)
    (force-mode-line-update t)
    (message "%s" (orrery--describe-status status))
    status))

;;;###autoload
(defun orrery-rollback (module)
  "Roll MODULE back to the version loaded before the last hot swap.
Shows the server's answer, or its error when it cannot."
  (interactive (list (orrery--read-target "Roll back module")))
  (let ((server (orrery--server)))
    (condition-case err
        (let ((result (orrery--request-sync
                       server :workspace/executeCommand
                       (list :command "orrery.rollback" :arguments (vector module)))))
          (message "Orrery: %s" (if result (orrery--summary result)
                                  (format "rolled back %s" module)))
          result)
      (jsonrpc-error
       (let ((msg (format "Orrery: rollback of %s failed: %s"
                          module (orrery--error-message err))))
         (message "%s" msg)
         (user-error "%s" msg))))))

(defun orrery--summary (value)
  "Return a short text for the JSON VALUE."
  (cond ((stringp value) value)
        ((and (listp value) (plist-get value :message)))
        (t (format "%S" value))))

;;;; State inspector

(defvar-local orrery--inspect-target nil
  "What the current state buffer shows.")

(defvar orrery-state-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "g") #'orrery-state-refresh)
    map)
  "Keymap of `orrery-state-mode'.")

(define-derived-mode orrery-state-mode special-mode "Orrery-State"
  "Major mode showing a process's state, as Orrery read it from the node.
\\{orrery-state-mode-map}"
  (setq-local revert-buffer-function
              (lambda (&rest _) (orrery-state-refresh))))

(defun orrery--insert-state (result)
  "Insert the `orrery/state' RESULT in the current buffer."
  (let ((inhibit-read-only t))
    (erase-buffer)
    (insert (propertize (format "%s\n" (plist-get result :target))
                        'face 'bold))
    (seq-doseq (p (plist-get result :processes))
      (insert (propertize
               (format "\n%s on %s · queue %s · memory %s · reductions %s\n\n"
                       (plist-get p :pid) (plist-get p :node)
                       (plist-get p :messageQueueLen)
                       (orrery--bytes (plist-get p :memory))
                       (plist-get p :reductions))
               'face 'orrery-lens-face))
      (insert (or (plist-get p :state)
                  (propertize "(state not available)" 'face 'shadow))
              "\n"))
    (goto-char (point-min))))

(defun orrery--bytes (n)
  "Return the byte count N in a readable form."
  (cond ((not (numberp n)) "?")
        ((< n 1024) (format "%d B" n))
        ((< n (* 1024 1024)) (format "%.1f KB" (/ n 1024.0)))
        (t (format "%.1f MB" (/ n 1048576.0)))))

;;;###autoload
(defun orrery-inspect (target)
  "Show the full state of TARGET, a module, registered name or pid.
Interactively, TARGET defaults to the module at point.  Return the
buffer showing it."
  (interactive (list (orrery--read-target "Inspect state of")))
  (let* ((server (orrery--server))
         (result (orrery-request :orrery/state (list :target target) server))
         (buf (get-buffer-create (format "*orrery state: %s*" target))))
    (with-current-buffer buf
      (orrery-state-mode)
      (setq orrery--view-server server
            orrery--inspect-target target)
      (orrery--insert-state result))
    (when (called-interactively-p 'interactive) (pop-to-buffer buf))
    buf))

(defun orrery-state-refresh ()
  "Read the state shown in this buffer again."
  (interactive)
  (orrery--insert-state
   (orrery-request :orrery/state (list :target orrery--inspect-target))))

;;;; Processes

(defvar-local orrery--processes-sort "memory"
  "How `orrery-processes' sorts: memory, reductions or queue.")

(defvar orrery-processes-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "RET") #'orrery-processes-inspect)
    (define-key map (kbd "s") #'orrery-processes-sort)
    map)
  "Keymap of `orrery-processes-mode'.")

(define-derived-mode orrery-processes-mode tabulated-list-mode "Orrery-Processes"
  "Major mode listing the processes of the attached nodes.
\\{orrery-processes-mode-map}"
  (setq tabulated-list-format
        [("Node" 18 t)
         ("PID" 14 t)
         ("Name" 26 t)
         ("Memory" 10 orrery--sort-memory :right-align t)
         ("Reductions" 12 orrery--sort-reductions :right-align t)
         ("Queue" 6 orrery--sort-queue :right-align t)
         ("Current function" 0 t)])
  (setq tabulated-list-padding 1)
  (add-hook 'tabulated-list-revert-hook #'orrery--processes-fetch nil t)
  (tabulated-list-init-header))

(defun orrery--sort-by (key)
  "Return a tabulated-list predicate sorting by the numeric KEY."
  (lambda (a b)
    (< (or (plist-get (car a) key) 0) (or (plist-get (car b) key) 0))))

(defalias 'orrery--sort-memory (orrery--sort-by :memory)
  "Sort processes by memory.")
(defalias 'orrery--sort-reductions (orrery--sort-by :reductions)
  "Sort processes by reductions.")
(defalias 'orrery--sort-queue (orrery--sort-by :messageQueueLen)
  "Sort processes by message queue length.")

(defun orrery--processes-fetch ()
  "Fill `tabulated-list-entries' from `orrery/processes'."
  (let ((result (orrery-request :orrery/processes
                                (list :sort orrery--processes-sort
                                      :offset 0
                                      :limit orrery-processes-limit))))
    (setq tabulated-list-entries
          (cl-loop
           for node across (plist-get result :nodes)
           append
           (cl-loop
            for p across (plist-get node :items)
            collect
            (list (list :node (plist-get node :node)
                        :pid (plist-get p :pid)
                        :name (plist-get p :name)
                        :memory (plist-get p :memory)
                        :reductions (plist-get p :reductions)
                        :messageQueueLen (plist-get p :messageQueueLen))
                  (vector (format "%s" (plist-get node :node))
                          (format "%s" (plist-get p :pid))
                          (format "%s" (or (plist-get p :name)
                                           (plist-get p :module) ""))
                          (orrery--bytes (plist-get p :memory))
                          (format "%s" (or (plist-get p :reductions) ""))
                          (format "%s" (or (plist-get p :messageQueueLen) ""))
                          (format "%s" (or (plist-get p :currentFunction) "")))))))))

;;;###autoload
(defun orrery-processes ()
  "List the processes of the attached nodes; return the buffer.
In the list, RET shows a process's state and s changes the order."
  (interactive)
  (let ((server (orrery--server))
        (buf (get-buffer-create "*orrery processes*")))
    (with-current-buffer buf
      (orrery-processes-mode)
      (setq orrery--view-server server)
      (orrery--processes-fetch)
      (tabulated-list-print))
    (when (called-interactively-p 'interactive) (pop-to-buffer buf))
    buf))

(defun orrery-processes-inspect ()
  "Show the state of the process on this line."
  (interactive)
  (let ((entry (tabulated-list-get-id)))
    (unless entry (user-error "No process on this line"))
    (pop-to-buffer
     (orrery-inspect (or (plist-get entry :name) (plist-get entry :pid))))))

(defun orrery-processes-sort (by)
  "Ask the nodes for the top processes by BY: memory, reductions or queue."
  (interactive (list (completing-read "Sort by: " '("memory" "reductions" "queue")
                                      nil t)))
  (setq orrery--processes-sort by)
  (revert-buffer))

;;;; Key map

(defvar orrery-command-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "a") #'orrery-attach)
    (define-key map (kbd "s") #'orrery-status)
    (define-key map (kbd "i") #'orrery-inspect)
    (define-key map (kbd "p") #'orrery-processes)
    (define-key map (kbd "r") #'orrery-refresh)
    (define-key map (kbd "R") #'orrery-rollback)
    (define-key map (kbd "b") #'orrery-step-back)
    (define-key map (kbd "B") #'orrery-reverse-continue)
    map)
  "Orrery's commands, for binding to a prefix key.")
(fset 'orrery-command-map orrery-command-map)

(autoload 'orrery-step-back "orrery-debug"
  "Step back one step in the stopped debug session." t)
(autoload 'orrery-reverse-continue "orrery-debug"
  "Run backwards to the previous breakpoint in the stopped debug session." t)

(provide 'orrery)

;; Register the debugger integration once a DAP client is loaded.
(declare-function orrery-dap-register "orrery-debug" ())
(declare-function orrery-dape-register "orrery-debug" ())
(with-eval-after-load 'dap-mode
  (require 'orrery-debug)
  (orrery-dap-register))
(with-eval-after-load 'dape
  (require 'orrery-debug)
  (orrery-dape-register))

;;; orrery.el ends here
