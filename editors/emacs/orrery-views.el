;;; orrery-views.el --- Orrery state inspector and process list  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 The Orrery authors

;; Author: The Orrery authors
;; Maintainer: The Orrery authors
;; Keywords: languages, tools, processes
;; URL: https://github.com/orrery-lsp/orrery
;; SPDX-License-Identifier: MIT

;; This file is not part of GNU Emacs.

;;; Commentary:

;; `orrery-inspect' shows the full state of a process (`orrery/state')
;; in a buffer; `orrery-processes' lists the processes of the attached
;; nodes (`orrery/processes').  Part of the orrery package; see orrery.el.

;;; Code:

(require 'cl-lib)
(require 'seq)
(require 'tabulated-list)
(require 'orrery)

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

(provide 'orrery-views)
;;; orrery-views.el ends here
