;;; orrery-debug.el --- Debug Elixir with Orrery in dap-mode or dape  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 The Orrery authors

;; Author: The Orrery authors
;; Maintainer: The Orrery authors
;; Keywords: languages, tools, processes
;; URL: https://github.com/orrery-lsp/orrery
;; SPDX-License-Identifier: MIT

;; This file is not part of GNU Emacs.

;;; Commentary:

;; Runs "orrery dap" (the Debug Adapter Protocol over stdio) from
;; dap-mode and from dape:
;;
;; - dap-mode: a debug provider for the type "orrery" and the templates
;;   "Orrery: attach to node" and "Orrery: launch the app" (M-x dap-debug);
;; - dape: the configurations `orrery' (attach), `orrery-launch' and
;;   `orrery-test' (mix test) in
;;   `dape-configs' (M-x dape).
;;
;; The node, cookie file and recording come from `orrery-node',
;; `orrery-cookie-file' and `orrery-debug-record' unless the configuration
;; sets them; a launch starts the workspace's app itself.
;;
;; In ExUnit files, `orrery-debug-test-at-point' debugs the test at point
;; (the server's "Debug test" code lenses, which eglot does not show).
;;
;; Neither client has a button for time travel, so this file adds
;; `orrery-step-back' and `orrery-reverse-continue', which send the DAP
;; requests stepBack and reverseContinue for the stopped thread of the
;; current dape or dap-mode session.  The recording views are in
;; orrery-history.el.
;;
;; Registration happens when dap-mode or dape is loaded (orrery.el
;; arranges that), or by calling `orrery-dap-register' and
;; `orrery-dape-register'.

;;; Code:

(require 'cl-lib)
(require 'seq)
(require 'subr-x)
(require 'orrery)

;; dap-mode (optional).
(defvar dap-debug-template-configurations)
(defvar dap--debug-providers)
(declare-function dap-register-debug-provider "ext:dap-mode" (language-id fn))
(declare-function dap-register-debug-template "ext:dap-mode" (name settings))
(declare-function dap--cur-session "ext:dap-mode" ())
(declare-function dap--session-running "ext:dap-mode" (session))
(declare-function dap--debug-session-thread-id "ext:dap-mode" (session) t)
(declare-function dap--debug-session-current-capabilities "ext:dap-mode" (session) t)
(declare-function dap--send-message "ext:dap-mode" (message callback session))
(declare-function dap--make-request "ext:dap-mode" (command &optional args))
(declare-function dap--resp-handler "ext:dap-mode" (&optional success error))
(declare-function dap--resume-application "ext:dap-mode" (session))

;; dape (optional).
(defvar dape-configs)
(declare-function dape--live-connection "ext:dape" (type &optional nowarn require-selected))
(declare-function dape--capable-p "ext:dape" (conn thing))
(declare-function dape--next-like-command "ext:dape" (conn command))
(declare-function dape--thread-id-object "ext:dape" (conn))
(declare-function dape-request "ext:dape" (conn command arguments &optional cb))

(defgroup orrery-debug nil
  "Debugging Elixir through Orrery's debug adapter."
  :group 'orrery
  :prefix "orrery-debug-")

(defcustom orrery-debug-record t
  "Non-nil means debug sessions keep a timeline, for stepping back."
  :type 'boolean)

(defcustom orrery-debug-record-limit nil
  "How many events a recorded timeline keeps, or nil for Orrery's default."
  :type '(choice (const :tag "Default" nil) natnum))

(defconst orrery-debug-type "orrery"
  "The debug type of Orrery sessions (the DAP adapter id).")

(defun orrery-debug--defaults (request)
  "Return arguments for the DAP REQUEST from the Orrery customizations.
REQUEST is \"attach\" or \"launch\"; a launch starts the workspace's
app, so it gets no node.  Only arguments with a value are included."
  (append
   (list :cwd (expand-file-name (orrery--root)))
   (when (and orrery-node (not (equal request "launch")))
     (list :node orrery-node))
   (when orrery-cookie-file
     (list :cookieFile (expand-file-name orrery-cookie-file)))
   (list :record (if orrery-debug-record t :json-false))
   (when orrery-debug-record-limit
     (list :recordLimit orrery-debug-record-limit))))

(defun orrery-debug--fill (config defaults)
  "Return CONFIG with the DEFAULTS plist's keys it lacks added."
  (let ((config (copy-sequence config)))
    (cl-loop for (key value) on defaults by #'cddr
             unless (plist-member config key)
             do (setq config (plist-put config key value)))
    config))

;;;; dap-mode

(defun orrery-dap-provider (config)
  "Complete the dap-mode debug CONFIG for an Orrery session.
Runs \"orrery dap\" over stdio; node, cookie file, cwd and recording
default to the Orrery customizations."
  (let ((request (or (plist-get config :request) "attach")))
    (orrery-debug--fill
     config
     (append (list :dap-server-path (list (orrery--executable) "dap")
                   :type orrery-debug-type
                   :request request
                   :name "Orrery")
             (orrery-debug--defaults request)))))

(defconst orrery-dap-templates
  `(("Orrery: attach to node"
     :type ,orrery-debug-type :request "attach" :name "Orrery: attach")
    ("Orrery: launch the app"
     :type ,orrery-debug-type :request "launch" :name "Orrery: launch")
    ("Orrery: debug mix test"
     :type ,orrery-debug-type :request "launch" :name "Orrery: mix test"
     :task "test" :taskArgs []))
  "The dap-mode templates Orrery registers: name, then settings.
The node is `orrery-node'; recording follows `orrery-debug-record'.")

;;;###autoload
(defun orrery-dap-register ()
  "Register Orrery's debug provider and templates with dap-mode."
  (dap-register-debug-provider orrery-debug-type #'orrery-dap-provider)
  (dolist (template orrery-dap-templates)
    (dap-register-debug-template (car template) (copy-sequence (cdr template)))))

;;;; dape

(defun orrery-dape--fill (config)
  "Complete the dape CONFIG from the Orrery customizations."
  (orrery-debug--fill config (orrery-debug--defaults
                              (or (plist-get config :request) "attach"))))

(defun orrery-dape--command ()
  "Return the Orrery binary, for dape."
  (orrery--executable))

(defconst orrery-dape-configs
  `((orrery
     modes (elixir-mode elixir-ts-mode orrery-elixir-mode)
     command orrery-dape--command
     command-args ("dap")
     fn orrery-dape--fill
     :type ,orrery-debug-type
     :request "attach")
    (orrery-launch
     modes (elixir-mode elixir-ts-mode orrery-elixir-mode)
     command orrery-dape--command
     command-args ("dap")
     fn orrery-dape--fill
     :type ,orrery-debug-type
     :request "launch")
    (orrery-test
     modes (elixir-mode elixir-ts-mode orrery-elixir-mode)
     command orrery-dape--command
     command-args ("dap")
     fn orrery-dape--fill
     :type ,orrery-debug-type
     :request "launch"
     :task "test"))
  "The `dape-configs' entries Orrery registers.
`orrery-test' runs \"mix test\" with breakpoints armed before the tests start.")

;;;###autoload
(defun orrery-dape-register ()
  "Add Orrery's configurations to `dape-configs'."
  (dolist (config orrery-dape-configs)
    (setf (alist-get (car config) dape-configs) (copy-tree (cdr config)))))

;;;; Debug test

;; In ExUnit files (*_test.exs) the server offers the code lenses "Debug
;; test", "Debug describe" and "Debug tests in file".  Their command
;; "orrery.debugTest" is for the client: its argument is a complete launch
;; configuration ("mix test FILE:LINE" under "orrery dap").

(declare-function dape "ext:dape" (config &optional skip-compile))
(declare-function dap-debug "ext:dap-mode" (debug-args))
(declare-function eglot--TextDocumentIdentifier "eglot" ())

(defconst orrery-debug-test-command "orrery.debugTest"
  "The command of the server's \"Debug test\" code lenses.")

(defun orrery-debug-test-pick (lenses line)
  "Return the \"Debug test\" lens of LENSES for the 0-based LINE.
LENSES is a textDocument/codeLens result: a list or vector of lens
plists.  Of the lenses whose command is `orrery-debug-test-command',
the one closest at or above LINE wins (the test around point, else
its describe block, else the whole file); nil if there is none."
  (let (best best-line)
    (seq-doseq (lens (or lenses []))
      (let ((command (plist-get lens :command))
            (at (plist-get (plist-get (plist-get lens :range) :start) :line)))
        (when (and (equal (plist-get command :command) orrery-debug-test-command)
                   (integerp at) (<= at line)
                   (or (null best-line) (> at best-line)))
          (setq best lens best-line at))))
    best))

(defun orrery-debug-test--config (lens)
  "Return the launch configuration LENS carries, as a plist, or nil."
  (let ((args (plist-get (plist-get lens :command) :arguments)))
    (and (> (length args) 0)
         (let ((config (elt args 0)))
           (and (consp config) (plist-get config :type) config)))))

(defcustom orrery-debug-client nil
  "The DAP client `orrery-debug-test-at-point' starts sessions with.
nil: dape when it is loaded, else dap-mode when it is loaded, else
whichever of the two is installed."
  :type '(choice (const :tag "Automatic" nil)
                 (const :tag "dape" dape)
                 (const :tag "dap-mode" dap-mode)))

(defun orrery-debug--client ()
  "Return the DAP client to start sessions with: `dape', `dap-mode' or nil."
  (or orrery-debug-client
      (and (featurep 'dape) 'dape)
      (and (featurep 'dap-mode) 'dap-mode)
      (and (require 'dape nil t) 'dape)
      (and (require 'dap-mode nil t) 'dap-mode)))

(defun orrery-debug-test-start (config)
  "Start the launch CONFIG of a \"Debug test\" lens.
CONFIG is a plist such as (:type \"orrery\" :request \"launch\"
:cwd DIR :task \"test\" :taskArgs [\"test/kv_test.exs:12\"]).
The client is `orrery-debug-client': by default dape when it is
loaded, else dap-mode."
  (unless (and (consp config) (equal (plist-get config :type) orrery-debug-type))
    (user-error "Orrery: not an Orrery launch configuration: %S" config))
  (pcase (orrery-debug--client)
    ('dape
     (unless (fboundp 'dape) (require 'dape))
     (let ((base (cdr (assq 'orrery-launch orrery-dape-configs))))
       (dape (orrery-dape--fill
              (orrery-debug--fill
               (copy-tree config)
               (list 'modes (plist-get base 'modes)
                     'command (orrery-dape--command)
                     'command-args (plist-get base 'command-args)
                     'command-cwd (or (plist-get config :cwd) (orrery--root))))))))
    ('dap-mode
     (unless (fboundp 'dap-debug) (require 'dap-mode))
     (dap-debug (copy-tree config)))
    (_ (user-error "Orrery: \"Debug test\" needs dape or dap-mode: \
install one (M-x package-install RET dape RET)"))))

;;;###autoload
(defun orrery-debug-test-at-point ()
  "Debug the ExUnit test at point with dape or dap-mode.
Asks the Orrery server for the buffer's code lenses and starts the
\"Debug test\" one closest at or above point: the test around point,
else its describe block, else the whole file.  Breakpoints are armed
before \"mix test\" starts."
  (interactive)
  (let ((server (orrery--server)))
    (orrery--flush-changes server)
    (let* ((lenses (orrery-request :textDocument/codeLens
                                   (list :textDocument (eglot--TextDocumentIdentifier))
                                   server))
           (lens (orrery-debug-test-pick
                  lenses (1- (line-number-at-pos (point) t))))
           (config (and lens (orrery-debug-test--config lens))))
      (unless config
        (user-error "Orrery: no test at or above point (\"Debug test\" works in \
*_test.exs files of the mix project)"))
      (message "Orrery: %s" (or (plist-get config :name) "debug test"))
      (orrery-debug-test-start config)
      config)))

;;;; Time travel

(defun orrery-debug--dape-connection ()
  "Return the stopped dape connection, or nil."
  (and (fboundp 'dape--live-connection)
       (ignore-errors (dape--live-connection 'stopped t))))

(defun orrery-debug--dap-session ()
  "Return the running dap-mode session, or nil."
  (and (fboundp 'dap--cur-session)
       (let ((session (dap--cur-session)))
         (and session (dap--session-running session) session))))

(defun orrery-debug--dape-send (conn command)
  "Send the DAP stepping COMMAND for the stopped thread of dape CONN."
  (unless (dape--capable-p conn :supportsStepBack)
    (user-error "This debug adapter cannot step back"))
  (if (fboundp 'dape--next-like-command)
      (dape--next-like-command conn command)
    (dape-request conn command (dape--thread-id-object conn))))

(defun orrery-debug--dap-send (session command)
  "Send the DAP stepping COMMAND for the stopped thread of dap-mode SESSION."
  (let ((thread (dap--debug-session-thread-id session))
        (caps (dap--debug-session-current-capabilities session)))
    (unless thread
      (user-error "No stopped thread in this session"))
    (unless (and (hash-table-p caps) (eq t (gethash "supportsStepBack" caps)))
      (user-error "This debug adapter cannot step back"))
    (dap--send-message (dap--make-request command (list :threadId thread))
                       (dap--resp-handler
                        nil (lambda (msg)
                              (message "Orrery: %s failed: %s" command msg)))
                       session)
    (dap--resume-application session)))

(defun orrery-debug-send (command)
  "Send the DAP stepping COMMAND to the current dape or dap-mode session.
The stopped thread of the session is the one that moves."
  (let (session)
    (cond ((setq session (orrery-debug--dape-connection))
           (orrery-debug--dape-send session command))
          ((setq session (orrery-debug--dap-session))
           (orrery-debug--dap-send session command))
          (t (user-error "No stopped debug session (dape or dap-mode)")))))

;;;###autoload
(defun orrery-step-back ()
  "Step back one step in the stopped debug session.
Works in dape and dap-mode sessions of Orrery's debug adapter when
the session records a timeline."
  (interactive)
  (orrery-debug-send "stepBack"))

;;;###autoload
(defun orrery-reverse-continue ()
  "Run backwards to the previous breakpoint in the stopped debug session.
Works in dape and dap-mode sessions of Orrery's debug adapter when
the session records a timeline."
  (interactive)
  (orrery-debug-send "reverseContinue"))

(provide 'orrery-debug)
;;; orrery-debug.el ends here
